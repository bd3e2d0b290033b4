#!/usr/bin/env bash
# The tunnel soak test, long run (docs/soak.md): builds funcie (RelWithDebInfo, in build/) if
# needed, then drives 10,000 invocations of mixed sizes through funcie emulate -> funcie wrap
# -> redis-server -> funcie connect for at least 3 minutes while the consumer is killed and
# restarted every ~3 s and Redis is restarted twice, and checks every outcome and the memory
# of both sides.
#   bash scripts/soak.sh                          the documented long run
#   bash scripts/soak.sh --invocations 20000      arguments go to tests/soak/soak.mjs (--help)
#   SOAK_SECRET=off bash scripts/soak.sh          without FUNCIE_SECRET on both sides
#
# Environment: FUNCIE_JOBS (parallel build jobs, default 2); FUNCIE_BIN to use another funcie
# binary (nothing is built then); SOAK_* for any option of soak.mjs. Exits with its status.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=${FUNCIE_JOBS:-2}

command -v node >/dev/null || { echo "soak.sh: node not found (run scripts/deps.sh)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "soak.sh: redis-server not found (run scripts/deps.sh)" >&2; exit 1; }

if [[ -z ${FUNCIE_BIN:-} ]]; then
  # An existing build/ keeps its generator and build type; a new one is RelWithDebInfo on Ninja.
  generator=()
  [[ -f build/CMakeCache.txt ]] || generator=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo)
  cmake -S "$root" -B build "${generator[@]}" >/dev/null
  cmake --build build -j "$jobs" --target funcie_cli
  export FUNCIE_BIN=$root/build/funcie
fi

echo "soak.sh: $FUNCIE_BIN ($(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
# At least 10,000 invocations and at least 3 minutes (whichever comes last), 10 minutes at most.
exec node "$root/tests/soak/soak.mjs" --invocations 10000 --min-seconds 180 --max-seconds 600 "$@"
