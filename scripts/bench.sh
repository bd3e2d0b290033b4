#!/usr/bin/env bash
# funcie's benchmarks: builds them (RelWithDebInfo, in build/) if needed, then runs each and
# prints its figures. Asserts nothing about speed; fails only when a benchmark cannot run.
#   bash scripts/bench.sh                 every benchmark with its defaults
#   bash scripts/bench.sh --rounds 9      arguments go to every benchmark (see bench/README.md)
#
# Environment: FUNCIE_JOBS (parallel build jobs, default 2); FUNCIE_BENCHMARKS (which ones,
# default "funcie_bench_emulate funcie_bench_tunnel funcie_bench_sqs"; the tunnel and SQS ones
# take no arguments; the SQS one needs node and the npm peers of tests/peers).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=${FUNCIE_JOBS:-2}
benchmarks=(${FUNCIE_BENCHMARKS:-funcie_bench_emulate funcie_bench_tunnel funcie_bench_sqs})

# An existing build/ keeps its generator; a new one uses Ninja. Benchmarks of a Debug or
# sanitizer build would measure the wrong thing, so the build type is set either way.
generator=()
[[ -f build/CMakeCache.txt ]] || generator=(-G Ninja)
cmake -S "$root" -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFUNCIE_BENCH=ON \
  >/dev/null
cmake --build build -j "$jobs" --target "${benchmarks[@]}"

for b in "${benchmarks[@]}"; do
  echo
  echo "======================================================================"
  echo " $b"
  echo "======================================================================"
  "build/bench/$b" "$@"
done
