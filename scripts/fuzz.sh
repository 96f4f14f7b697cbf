#!/usr/bin/env bash
# scripts/fuzz.sh BUILD SECONDS NAME...: run each libFuzzer target
# BUILD/fuzz-NAME for SECONDS, starting from tests/fuzz/seeds-NAME/ plus
# generated seeds, keeping its growing corpus in BUILD/corpus-NAME/ and
# any crashers in BUILD/crashers-NAME/.  Prints a summary per target and
# fails if any target found a crash.
set -euo pipefail
build=$1 secs=$2; shift 2
top=$(cd "$(dirname "$0")/.." && pwd)
status=0
for n in "$@"; do
  corpus=$build/corpus-$n crash=$build/crashers-$n
  mkdir -p "$corpus" "$crash"
  seeds=$top/tests/fuzz/seeds-$n
  [ -d "$seeds" ] && cp -n "$seeds"/* "$corpus"/ 2>/dev/null || true
  if [ -x "$top/tests/fuzz/make-seeds-$n.sh" ]; then
    "$top/tests/fuzz/make-seeds-$n.sh" "$corpus" "$top/build/vhdkit"
  fi
  echo "fuzz-$n: running for ${secs}s from $(ls "$corpus" | wc -l) seeds"
  log=$build/fuzz-$n.log
  if ! "$build/fuzz-$n" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=4096 \
       -timeout=30 -artifact_prefix="$crash/" -print_final_stats=1 "$corpus" >"$log" 2>&1; then
    echo "fuzz-$n: FOUND A PROBLEM — see $log and $crash/"
    tail -40 "$log"
    status=1
  fi
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|cov: ' "$log" | tail -4
  echo "fuzz-$n: corpus $(ls "$corpus" | wc -l) inputs, crashers $(ls "$crash" | wc -l)"
done
exit $status
