#!/usr/bin/env bash
# make fuzz: builds the libFuzzer driver (otamesh-fuzz, -sanitize=fuzzer,address, into
# .build-fuzz) and runs every fuzz target, or those in FUZZ_TARGETS, for FUZZ_SECONDS each
# (default 60) on a scratch copy of its seed corpus (Tests/Fixtures/fuzz/<target>/; the repo
# corpus never grows). Crash reproducers and each run's log go to fuzz-findings/<target>/; the
# table (target, executions, exec/s, coverage, findings) is printed and kept in
# fuzz-findings/summary.md. Exit 1 if any target found something.
set -uo pipefail
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
EACH=${FUZZ_SECONDS:-60}
FLAGS=(--scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -use-ld=lld)
export OTAMESH_FUZZ=1
"$SWIFT" build "${FLAGS[@]}" --product otamesh-fuzz || exit 2
bin="$("$SWIFT" build "${FLAGS[@]}" --show-bin-path)/otamesh-fuzz"

targets=${FUZZ_TARGETS:-$(cd Tests/Fixtures/fuzz && for d in */; do printf '%s ' "${d%/}"; done)}
findings=fuzz-findings
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$findings"
summary="$findings/summary.md"
{
  echo "FUZZ_SECONDS=$EACH, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
  echo
  echo "| target | executions | exec/s | cov | ft | corpus | findings |"
  echo "|---|---:|---:|---:|---:|---:|---|"
} > "$summary"
tail -n 2 "$summary"

found=0
for target in $targets; do
  [ -d "Tests/Fixtures/fuzz/$target" ] || { echo "make fuzz: no corpus Tests/Fixtures/fuzz/$target" >&2; exit 2; }
  corpus="$work/$target"
  mkdir -p "$corpus" "$findings/$target"
  cp Tests/Fixtures/fuzz/"$target"/* "$corpus"/
  log="$findings/$target/run.log"
  OTAMESH_FUZZ_TARGET="$target" ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}" "$bin" "$corpus" \
    -max_total_time="$EACH" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$findings/$target/" > "$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  last=$(grep -E '#[0-9]+.*cov: ' "$log" | tail -n 1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  units=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
  artifacts=$(cd "$findings/$target" && ls | grep -E '^(crash|leak|timeout|oom|slow-unit)-' | tr '\n' ' ')
  if [ -n "$artifacts" ] || [ "$rc" -ne 0 ]; then
    found=1
    what="${artifacts:-exit $rc} (see $log)"
  else
    what="none"
  fi
  echo "| $target | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${units:-?} | $what |" | tee -a "$summary"
done
exit $found
