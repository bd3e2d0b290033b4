// funcie with the AWS CDK (TypeScript, aws-cdk-lib v2), SQS backend: the layer, the two
// queues, a Node.js function with the layer, the proxy-only function, least privilege on
// the queues, the shared secret from Secrets Manager (a dynamic reference: the value never
// enters the synthesized template). Next to the zips:
//   npm i aws-cdk-lib constructs && npx cdk deploy --app "npx ts-node app.ts"
import { App, CfnOutput, Duration, SecretValue, Stack, StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** The SQS actions funcie calls, per side and queue (docs/deploy.md, "IAM"). */
const FORWARDER_ON_REQUESTS = ['sqs:SendMessage', 'sqs:GetQueueAttributes', 'sqs:ListQueueTags'];
const FORWARDER_ON_RESPONSES = ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility'];
const DEVELOPER_ON_BOTH = ['sqs:SendMessage', 'sqs:GetQueueAttributes', ...FORWARDER_ON_RESPONSES];
/** The session's presence tag on the request queue (docs/sqs.md, "Presence"). */
const DEVELOPER_ON_REQUESTS = ['sqs:TagQueue', 'sqs:UntagQueue', 'sqs:ListQueueTags'];

interface FuncieStackProps extends StackProps {
  /** The tunnel's name: funcie connect --app. */
  readonly app: string;
  /** Secrets Manager secret whose SecretString is what `funcie secret` printed. */
  readonly secretName: string;
}

export class FuncieStack extends Stack {
  constructor(scope: Construct, id: string, props: FuncieStackProps) {
    super(scope, id, props);

    const queueProps: sqs.QueueProps = {
      retentionPeriod: Duration.hours(1),
      maxMessageSizeBytes: 1048576,
      visibilityTimeout: Duration.seconds(30),
    };
    const requests = new sqs.Queue(this, 'Requests', { ...queueProps, queueName: `funcie-${props.app}-requests` });
    const responses = new sqs.Queue(this, 'Responses', { ...queueProps, queueName: `funcie-${props.app}-responses` });

    const layer = new lambda.LayerVersion(this, 'FuncieLayer', {
      layerVersionName: 'funcie',
      code: lambda.Code.fromAsset('funcie-layer.zip'),
      compatibleArchitectures: [lambda.Architecture.X86_64],
    });

    // A token: CloudFormation resolves it at deploy time ({{resolve:secretsmanager:...}}).
    const secret = SecretValue.secretsManager(props.secretName);
    const funcieEnvironment: Record<string, string> = {
      FUNCIE_BACKEND: 'sqs://',
      FUNCIE_APP: props.app,
      FUNCIE_REQUEST_QUEUE_URL: requests.queueUrl,
      FUNCIE_RESPONSE_QUEUE_URL: responses.queueUrl,
      FUNCIE_SECRET: secret.unsafeUnwrap(),
    };

    const orders = new lambda.Function(this, 'Orders', {
      runtime: lambda.Runtime.NODEJS_20_X,
      handler: 'index.handler',
      code: lambda.Code.fromAsset('src'),
      architecture: lambda.Architecture.X86_64,
      timeout: Duration.seconds(30),
      layers: [layer],
      environment: { ...funcieEnvironment, AWS_LAMBDA_EXEC_WRAPPER: '/opt/funcie-wrapper' },
    });

    const proxy = new lambda.Function(this, 'Proxy', {
      functionName: `${props.app}-proxy`,
      runtime: lambda.Runtime.PROVIDED_AL2023,
      handler: 'bootstrap',
      code: lambda.Code.fromAsset('funcie-proxy.zip'),
      architecture: lambda.Architecture.X86_64,
      timeout: Duration.minutes(15),
      environment: funcieEnvironment,
    });

    for (const fn of [orders, proxy]) {
      fn.addToRolePolicy(new iam.PolicyStatement({ actions: FORWARDER_ON_REQUESTS, resources: [requests.queueArn] }));
      fn.addToRolePolicy(new iam.PolicyStatement({ actions: FORWARDER_ON_RESPONSES, resources: [responses.queueArn] }));
    }

    const developers = new iam.ManagedPolicy(this, 'Developers', {
      description: 'funcie connect, funcie status and funcie doctor on this app\'s queues',
      statements: [
        new iam.PolicyStatement({ actions: DEVELOPER_ON_BOTH, resources: [requests.queueArn, responses.queueArn] }),
        new iam.PolicyStatement({ actions: DEVELOPER_ON_REQUESTS, resources: [requests.queueArn] }),
      ],
    });

    new CfnOutput(this, 'DeveloperPolicyArn', { value: developers.managedPolicyArn });
    new CfnOutput(this, 'Connect', {
      value: `funcie connect --backend sqs:// --app ${props.app} --request-queue ${requests.queueUrl} `
        + `--response-queue ${responses.queueUrl} --secret-file ~/.config/funcie/${props.app}.secret `
        + '-- npx aws-lambda-ric index.handler',
    });
  }
}

const app = new App();
new FuncieStack(app, 'FuncieOrders', { app: 'orders', secretName: 'funcie/orders' });
