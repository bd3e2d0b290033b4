#!/usr/bin/env bash
# funcie's tests and quality gates, as CI runs them (.ci/run calls this):
#   deps     scripts/deps.sh: Debian packages and the npm peers
#   format   scripts/format.sh --check
#   release  RelWithDebInfo build in build/, every ctest (unit, integration, ...)
#   asan     ASan+UBSan build in build-asan/, the unit, Redis, SQS and integration tests
#   fuzz     libFuzzer build in build-fuzz/ (clang), each target from its seed corpus
#
#   bash scripts/test.sh                 everything, in that order
#   bash scripts/test.sh format asan     only those steps (deps always runs first)
#
# Environment: FUNCIE_JOBS (parallel build and test jobs, default 2), FUNCIE_FUZZ_SECONDS
# (run time of each fuzz target, default 20). Stops at the first failure, non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

jobs=${FUNCIE_JOBS:-2}
fuzz_seconds=${FUNCIE_FUZZ_SECONDS:-20}
all_steps=(format release asan fuzz)

selected=("$@")
[[ ${#selected[@]} -gt 0 ]] || selected=("${all_steps[@]}")
for s in "${selected[@]}"; do
  [[ " ${all_steps[*]} deps " == *" $s "* ]] || { echo "test.sh: unknown step '$s' (steps: deps ${all_steps[*]})" >&2; exit 2; }
done

results=()
current=""
ctest_logs=()
started=$SECONDS

summary() {
  local rc=$1 passed=0 failed=0 log line
  if [[ -n $current ]]; then results+=("FAILED  $current"); fi
  # Each ctest run ends with "N% tests passed, F tests failed out of T".
  for log in "${ctest_logs[@]}"; do
    line=$(grep -E '[0-9]+ tests? failed out of [0-9]+' "$log" | tail -1 || true)
    [[ -n $line ]] || continue
    local f t
    f=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
    t=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
    failed=$((failed + f))
    passed=$((passed + t - f))
  done
  echo
  echo "======================================================================"
  echo " summary ($((SECONDS - started)) s)"
  echo "======================================================================"
  printf '  %s\n' "${results[@]}"
  if [[ $rc -eq 0 ]]; then
    echo "  all steps passed"
  else
    echo "  stopped at the first failure (exit $rc)"
  fi
  if [[ ${#ctest_logs[@]} -gt 0 ]]; then
    echo "ctest: $passed passed, $failed failed"
  fi
}
trap 'rc=$?; trap - EXIT; summary "$rc"; exit "$rc"' EXIT

section() {
  echo
  echo "======================================================================"
  echo " $*"
  echo "======================================================================"
}

run_step() {
  local name=$1 t0=$SECONDS
  current=$name
  "step_$name"
  results+=("ok      $name ($((SECONDS - t0)) s)")
  current=""
}

# configure DIR ARGS...: Ninja for a new build tree; an existing one keeps its generator.
configure() {
  local dir=$1
  shift
  local generator=()
  [[ -f $dir/CMakeCache.txt ]] || generator=(-G Ninja)
  cmake -S "$root" -B "$dir" "${generator[@]}" "$@"
}

# run_ctest DIR LOG ARGS...: ctest with its output kept for the summary's counts.
run_ctest() {
  local dir=$1 log=$2
  shift 2
  ctest_logs+=("$log")
  ctest --test-dir "$dir" --output-on-failure --no-tests=error -j "$jobs" "$@" 2>&1 | tee "$log"
}

step_deps() {
  section "deps: Debian packages and npm peers (scripts/deps.sh)"
  bash scripts/deps.sh
}

step_format() {
  section "format: clang-format check (scripts/format.sh --check)"
  bash scripts/format.sh --check
}

step_release() {
  section "release: RelWithDebInfo build in build/, all tests"
  configure build -DCMAKE_BUILD_TYPE=RelWithDebInfo
  cmake --build build -j "$jobs"
  run_ctest build build/ctest.log
}

step_asan() {
  section "asan: AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/, unit, Redis and integration tests"
  configure build-asan -DCMAKE_BUILD_TYPE=Debug -DFUNCIE_SANITIZE=ON -DFUNCIE_BENCH=OFF
  cmake --build build-asan -j "$jobs"
  # Sanitizer reports go to files (printed below) rather than into the tests' output, so a
  # child whose exit status no test looks at (a function under `funcie emulate`, say) still
  # fails the step.
  local logs=$root/build-asan/sanitizer-reports
  rm -rf "$logs"
  mkdir -p "$logs"
  local ok=1
  ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:strict_string_checks=1:check_initialization_order=1:log_path=$logs/asan" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan" \
    run_ctest build-asan build-asan/ctest.log -L 'unit|redis|sqs|integration' || ok=0
  if compgen -G "$logs/*" >/dev/null; then
    echo "sanitizer reports (in $logs):"
    for report in "$logs"/*; do
      echo "--- $report"
      head -n 60 "$report"
    done
    ok=0
  fi
  [[ $ok -eq 1 ]]
}

step_fuzz() {
  section "fuzz: libFuzzer build in build-fuzz/ (clang), ${fuzz_seconds} s per target"
  CC=clang CXX=clang++ configure build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFUNCIE_FUZZ=ON
  cmake --build build-fuzz -j "$jobs"
  local targets=() bin
  for bin in build-fuzz/fuzz/fuzz_*; do
    [[ -f $bin && -x $bin ]] && targets+=("$bin")
  done
  [[ ${#targets[@]} -gt 0 ]] || { echo "no fuzz targets were built" >&2; return 1; }
  mkdir -p build-fuzz/artifacts
  for bin in "${targets[@]}"; do
    local name seeds corpus log
    name=$(basename "$bin")
    seeds=fuzz/corpus/$name
    corpus=build-fuzz/corpus/$name  # grows run after run; the seeds in git stay as they are
    log=build-fuzz/$name.log
    mkdir -p "$corpus" "$seeds"
    echo "--- $name"
    if ! "$bin" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -dict=fuzz/http.dict -print_final_stats=1 \
        -artifact_prefix="build-fuzz/artifacts/$name-" "$corpus" "$seeds" >"$log" 2>&1; then
      tail -n 60 "$log"
      local input
      input=$(ls -t "build-fuzz/artifacts/$name-"* 2>/dev/null | head -n 1 || true)
      echo "$name failed on the input ${input:-(none saved)}; reproduce with: $bin $input" >&2
      return 1
    fi
    grep -E '^#[0-9]+[[:space:]]+DONE' "$log" || tail -n 3 "$log"
  done
}

run_step deps
for s in "${all_steps[@]}"; do
  if [[ " ${selected[*]} " == *" $s "* ]]; then run_step "$s"; fi
done
exit 0
