#!/usr/bin/env bash
# The demo: one function, invoked the way the cloud invokes it, answered first by its
# deployed code, then by the copy on this machine while `funcie connect` runs, then by the
# deployed code again. Everything is real: redis-server is the tunnel's broker, `funcie
# emulate` stands in for the Lambda service, `funcie wrap` is what the funcie layer puts in
# the deployed function, and the handlers run on AWS's own Node runtime client
# (aws-lambda-ric). Installs and builds what it needs on the way.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bold=$'\033[1m' dim=$'\033[2m' off=$'\033[0m'
[ -t 1 ] || { bold='' dim='' off=''; }
say() { printf '\n%s== %s%s\n' "$bold" "$*" "$off"; }

say "Installing dependencies and building (the first run takes a few minutes)"
bash scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target funcie_cli

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { node -e 's=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_for() {  # FILE PATTERN: waits up to 10 s for PATTERN in FILE
  for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return; sleep 0.1; done
  echo "timed out waiting for '$2' in $1:" >&2; cat "$1" "${1%.out}.log" >&2 2>/dev/null || true; exit 1
}
ric=$root/tests/peers/node_modules/aws-lambda-ric/bin/index.mjs
event=$root/examples/events/apigw-http-get.json

say "The broker: redis-server on a free loopback port"
redis_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)
wait_for "$work/redis.log" 'Ready to accept connections'
backend=redis://127.0.0.1:$redis_port
echo "redis-server listens at $backend"
# The shared secret both sides hold: every message through Redis is sealed (docs/security.md).
"$root/build/funcie" secret >"$work/demo.secret"
echo "shared secret: key $("$root/build/funcie" secret --key-id --secret-file "$work/demo.secret") (the function's FUNCIE_SECRET, the laptop's --secret-file)"

say "The deployed function: examples/node-hello, wrapped by funcie wrap, under funcie emulate"
(cd examples/node-hello && exec "$root/build/funcie" emulate --function hello --port 0 \
  --env FUNCIE_BACKEND="$backend" --env FUNCIE_APP=hello --env FUNCIE_SECRET="$(<"$work/demo.secret")" \
  -- "$root/build/funcie" wrap -- node "$ric" index.handler) >"$work/cloud.out" 2>"$work/cloud.log" &
pids+=($!)
wait_for "$work/cloud.out" 'listening on'
port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/cloud.out" | head -n1)
echo "Invoke API at http://127.0.0.1:$port (FUNCIE_BACKEND=$backend FUNCIE_APP=hello)"

# The developer's copy of the same function, changed a second ago.
mkdir -p "$work/local"
sed 's/from Node.js/from your machine, edited a second ago/' examples/node-hello/index.mjs >"$work/local/index.mjs"

step=0
invoke() {  # one readable line: step, who answered, status, body
  step=$((step + 1))
  local body status
  body=$(curl -sS -o - -w '\n%{http_code}' -X POST --data-binary "@$event" \
    "http://127.0.0.1:$port/2015-03-31/functions/hello/invocations")
  status=${body##*$'\n'}
  body=${body%$'\n'*}
  local message
  message=$(node -e 'try{console.log(JSON.parse(process.argv[1]).message)}catch{console.log(process.argv[1])}' "$body")
  printf '%s%d.%s %-48s -> HTTP %s  %s\n' "$bold" "$step" "$off" "$1" "$status" "$message"
}

say "Invoking it with an API Gateway event, the way the cloud would"
invoke "nobody connected: the deployed code answers"

(cd "$work/local" && exec "$root/build/funcie" connect --backend "$backend" --app hello \
  --secret-file "$work/demo.secret" \
  -- node "$ric" index.handler) >"$work/local.out" 2>"$work/local.log" &
connect_pid=$!
pids+=($connect_pid)
wait_for "$work/local.out" 'serving app'
printf '   %s%s%s\n' "$dim" "$(head -n1 "$work/local.out")" "$off"
invoke "funcie connect runs: the local copy answers"
invoke "and again, still local"

kill -INT "$connect_pid"
wait "$connect_pid" 2>/dev/null || true
printf '   %sfuncie connect stopped (Ctrl-C)%s\n' "$dim" "$off"
invoke "disconnected: the deployed code answers again"

say "What funcie connect logged"
sed 's/^/   /' "$work/local.log"
say "Done. Every process above was started on loopback and is stopped now."
