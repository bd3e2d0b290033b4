#!/usr/bin/env bash
# The demo: `funcie emulate` stands in for the Lambda service and hosts two real functions,
# a C++ one on funcie's runtime client and a Node.js one on AWS's own runtime client
# (aws-lambda-ric). Each is invoked over the Lambda Invoke API with a real API Gateway
# event, as the cloud would. Installs and builds what it needs on the way.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
[ -t 1 ] || say() { printf '\n== %s\n' "$*"; }

say "Installing dependencies and building (first run takes a few minutes)"
bash scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target funcie_cli funcie_example_hello

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Starts `funcie emulate` on a free port; prints the port.
emulate() {
  local name=$1 cwd=$2
  shift 2
  (cd "$cwd" && exec "$root/build/funcie" emulate --function "$name" --port 0 -- "$@") \
    >"$work/$name.out" 2>"$work/$name.log" &
  pids+=($!)
  for _ in $(seq 100); do
    if grep -q 'listening on' "$work/$name.out"; then
      sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/$name.out" | head -n1
      return
    fi
    sleep 0.1
  done
  echo "funcie emulate did not start:" >&2
  cat "$work/$name.log" >&2
  exit 1
}

invoke() {
  local port=$1 name=$2 payload=$3
  curl -sS -D "$work/headers" -X POST --data-binary "$payload" \
    "http://127.0.0.1:$port/2015-03-31/functions/$name/invocations"
  echo
  grep -i -E '^(x-amz-function-error|x-amzn-requestid):' "$work/headers" | sed 's/^/   /' || true
}

event="$root/examples/events/apigw-http-get.json"

say "A C++ function (examples/hello-cpp) under funcie emulate"
port=$(emulate hello-cpp "$root" "$root/build/examples/funcie_example_hello")
echo "funcie emulate listens on http://127.0.0.1:$port"
echo "-> invoking with an API Gateway HTTP API event (GET /hello?name=Ada):"
invoke "$port" hello-cpp "@$event"
echo "-> invoking with an event it cannot handle (a function error, as Lambda reports it):"
invoke "$port" hello-cpp '{"unexpected": true}'

if [ -x tests/peers/node_modules/aws-lambda-ric/bin/index.mjs ] || [ -f tests/peers/node_modules/aws-lambda-ric/bin/index.mjs ]; then
  say "A Node.js function (examples/node-hello) on AWS's runtime client, aws-lambda-ric"
  port=$(emulate hello-node "$root/examples/node-hello" node "$root/tests/peers/node_modules/aws-lambda-ric/bin/index.mjs" index.handler)
  echo "-> invoking with the same API Gateway event:"
  invoke "$port" hello-node "@$event"
fi

say "What funcie emulate logged (one REPORT line per invocation)"
cat "$work"/*.log
say "Done: Ctrl-C (SIGINT) stops funcie emulate and its runtimes"
