// A Node.js Lambda handler, run by AWS's own runtime client (aws-lambda-ric) under
// `funcie emulate`, exactly as the managed nodejs runtime would run it.
export const handler = async (event, context) => {
  if (event && event.throw) throw new TypeError(event.throw);
  const name = event?.queryStringParameters?.name ?? event?.name ?? 'world';
  return {
    message: `Hello, ${name}, from Node.js`,
    requestId: context.awsRequestId,
    functionName: context.functionName,
    remainingMs: context.getRemainingTimeInMillis(),
  };
};
