#!/usr/bin/env bash
# What one forwarded invocation costs each process, measured during the 64-in-flight phase of
# funcie_bench_tunnel (bench/README.md, "Forwarded throughput"): CPU time, system calls and
# context switches per invocation of the bench (the forwarder), funcie connect, redis-server
# and the echo runtimes (perf stat over 2 s), and the Redis commands, reads and writes per
# invocation (INFO commandstats and stats over the same 2 s). Needs perf and redis-cli.
#   bash bench/per_invocation.sh [BENCH_BINARY]     default build/bench/funcie_bench_tunnel
# FUNCIE_BENCH_CLI_PATH and FUNCIE_BENCH_ECHO_PATH pass another funcie / echo runtime to the
# bench (before/after comparisons). Invocations are counted as half the EVALSHA calls (one
# assignment and one response each).
set -euo pipefail
cd "$(dirname "$0")/.."
bench=${1:-build/bench/funcie_bench_tunnel}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

nice -n 15 "$bench" --no-history --only throughput >"$out/bench.log" 2>&1 &
b=$!
c=
for _ in $(seq 1 1200); do  # the throughput phase: funcie connect has started runtimes
  c=$(pgrep -P "$b" -x funcie || true)
  if [[ -n $c ]] && (($(pgrep -c -P "$c" || true) >= 5)); then break; fi
  sleep 0.1
done
[[ -n $c ]] || { echo "funcie connect did not start" >&2; exit 1; }
sleep 1.5  # past the 1 s warm-up
r=$(pgrep -P "$b" -x redis-server)
port=$(ps -o args= -p "$r" | grep -o ':[0-9]*' | tr -d :)
echos=$(pgrep -P "$c" -d, -x funcie_example_)
snapshot() {
  redis-cli -p "$port" info commandstats | tr -d '\r' | grep -o '^cmdstat_[a-z|]*:calls=[0-9]*'
  redis-cli -p "$port" info stats | tr -d '\r' | grep -E '^total_(reads|writes)_processed'
}
snapshot >"$out/before"
for p in bench:$b connect:$c redis:$r echo:$echos; do
  perf stat -e raw_syscalls:sys_enter,context-switches,task-clock -p "${p#*:}" \
    -o "$out/${p%%:*}.stat" -- sleep 2 >/dev/null 2>&1 &
done
wait %2 %3 %4 %5
snapshot >"$out/after"
wait "$b"
grep "in flight" "$out/bench.log"
python3 - "$out" <<'PY'
import re, sys
d = sys.argv[1]
def load(name):
    values = {}
    for line in open(f"{d}/{name}"):
        key, _, rest = line.strip().partition(':')
        if rest: values[key] = int(rest.split('=')[-1])
    return values
before, after = load('before'), load('after')
delta = {k: v - before.get(k, 0) for k, v in after.items()}
inv = delta.get('cmdstat_evalsha', 0) / 2
if inv <= 0: sys.exit("no invocation counted")
print(f"invocations in 2 s: {inv:.0f}")
for proc in ('bench', 'connect', 'redis', 'echo'):
    text = open(f"{d}/{proc}.stat").read()
    def count(event):
        m = re.search(r'([\d.,]+)\s+(?:msec\s+)?' + re.escape(event), text)
        return float(m.group(1).replace(',', '')) if m else 0.0
    print(f"  {proc:8s} CPU {count('task-clock') * 1000 / inv:6.1f} us  "
          f"syscalls {count('raw_syscalls:sys_enter') / inv:5.2f}  "
          f"context switches {count('context-switches') / inv:5.2f}  per invocation")
print("  Redis per invocation: " + ", ".join(
    f"{k.replace('cmdstat_', '')} {v / inv:.2f}"
    for k, v in sorted(delta.items(), key=lambda kv: -kv[1]) if v / inv >= 0.01))
PY
