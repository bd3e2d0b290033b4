#!/usr/bin/env bash
# funcie with the AWS CLI (v2) and jq: the layer on an existing Node.js function, the SQS
# queues, the function role's policy, the shared secret from Secrets Manager; then the
# proxy-only function and a C++ function. Run it where the zips are (docs/deploy.md).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
REGION=${AWS_REGION:-eu-west-1}
APP=orders              # the tunnel's name: funcie connect --app orders
FUNCTION=orders-api     # an existing function on a managed runtime (nodejs20.x, ...)
ACCOUNT=$(aws sts get-caller-identity --query Account --output text)
export AWS_REGION=$REGION

# 1. The layer: funcie package --layer -o funcie-layer.zip (x86_64).
LAYER_ARN=$(aws lambda publish-layer-version --layer-name funcie \
  --zip-file fileb://funcie-layer.zip --compatible-architectures x86_64 \
  --query LayerVersionArn --output text)

# 2. The broker: two SQS queues (for Redis, skip this and use FUNCIE_BACKEND=rediss://...).
make_queue() {
  aws sqs create-queue --queue-name "$1" --query QueueUrl --output text \
    --attributes MessageRetentionPeriod=3600,MaximumMessageSize=1048576,VisibilityTimeout=30
}
REQUEST_QUEUE=$(make_queue "funcie-$APP-requests")
RESPONSE_QUEUE=$(make_queue "funcie-$APP-responses")

# 3. The shared secret: made once on your machine, stored in Secrets Manager, never put on
#    a command line (file:// reads it from the file).
SECRET_FILE=$HOME/.config/funcie/$APP.secret
mkdir -p "$(dirname "$SECRET_FILE")"
if [[ ! -s $SECRET_FILE ]]; then
  (umask 077 && funcie secret >"$SECRET_FILE")
fi
if ! aws secretsmanager describe-secret --secret-id "funcie/$APP" >/dev/null 2>&1; then
  aws secretsmanager create-secret --name "funcie/$APP" \
    --secret-string "file://$SECRET_FILE" >/dev/null
fi

# 4. The function role may use the two queues, and nothing else of SQS.
ROLE_ARN=$(aws lambda get-function-configuration --function-name "$FUNCTION" \
  --query Role --output text)
sed -e "s/123456789012/$ACCOUNT/g" -e "s/eu-west-1/$REGION/g" -e "s/funcie-orders-/funcie-$APP-/g" \
  "$here/iam-function-policy.json" >function-policy.json
aws iam put-role-policy --role-name "${ROLE_ARN##*/}" --policy-name funcie-sqs \
  --policy-document file://function-policy.json

# 5. The function's environment: its own variables plus funcie's. The file holds the
#    secret: written with umask 077 and removed at the end.
ENV_FILE=$(umask 077 && mktemp)
trap 'rm -f "$ENV_FILE"' EXIT
aws lambda get-function-configuration --function-name "$FUNCTION" \
    --query 'Environment.Variables' --output json |
  jq --arg app "$APP" --arg req "$REQUEST_QUEUE" --arg resp "$RESPONSE_QUEUE" \
     --rawfile secret "$SECRET_FILE" \
     '{Variables: ((. // {}) + {
        AWS_LAMBDA_EXEC_WRAPPER: "/opt/funcie-wrapper",
        FUNCIE_BACKEND: "sqs://",
        FUNCIE_APP: $app,
        FUNCIE_REQUEST_QUEUE_URL: $req,
        FUNCIE_RESPONSE_QUEUE_URL: $resp,
        FUNCIE_SECRET: ($secret | rtrimstr("\n"))})}' >"$ENV_FILE"

# Check it before deploying it (Variables only, as doctor reads it).
jq .Variables "$ENV_FILE" | funcie doctor --function-env --env-file /dev/stdin --app "$FUNCTION"

mapfile -t LAYERS < <(aws lambda get-function-configuration --function-name "$FUNCTION" \
  --query 'Layers[].Arn' --output text | tr '\t' '\n' | grep -v -e '^None$' -e ':layer:funcie:' || true)
aws lambda update-function-configuration --function-name "$FUNCTION" \
  --layers "${LAYERS[@]}" "$LAYER_ARN" --environment "file://$ENV_FILE" >/dev/null
aws lambda wait function-updated --function-name "$FUNCTION"

# 6. The proxy-only function (funcie package --proxy -o funcie-proxy.zip): every invocation
#    goes to funcie connect; with nobody connected the caller gets Funcie.NoConsumer.
jq '.Variables |= del(.AWS_LAMBDA_EXEC_WRAPPER)' "$ENV_FILE" >"$ENV_FILE.proxy"
trap 'rm -f "$ENV_FILE" "$ENV_FILE.proxy"' EXIT
aws lambda create-function --function-name "$APP-proxy" --runtime provided.al2023 \
  --architectures x86_64 --handler bootstrap --timeout 900 --memory-size 256 \
  --role "$ROLE_ARN" --zip-file fileb://funcie-proxy.zip \
  --environment "file://$ENV_FILE.proxy" >/dev/null

# 7. A C++ function (funcie package build/my_function -o function.zip). With
#    funcie::start the forwarder is built in: no layer, the same FUNCIE_ variables.
aws lambda create-function --function-name "$APP-cpp" --runtime provided.al2023 \
  --architectures x86_64 --handler bootstrap --timeout 30 \
  --role "$ROLE_ARN" --zip-file fileb://function.zip \
  --environment "file://$ENV_FILE.proxy" >/dev/null

echo "on your machine: funcie connect --backend sqs:// --app $APP \\"
echo "  --request-queue $REQUEST_QUEUE --response-queue $RESPONSE_QUEUE \\"
echo "  --secret-file $SECRET_FILE -- npx aws-lambda-ric index.handler"
