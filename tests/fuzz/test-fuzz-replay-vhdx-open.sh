#!/usr/bin/env bash
# Replay the fuzz seeds (committed and generated) and every past crasher
# of fuzz-vhdx-open through the parser without libFuzzer (run under ASan
# and UBSan too by tests/run.sh).  Each must end in a clean error or a
# clean open, never a crash or a sanitizer report.
. "$(dirname "$0")/../lib.sh"
bin=$VHDKIT_BUILD/tests/fuzz-vhdx-open-replay
[ -x "$bin" ] || fail "$bin is not built"
mkdir -p "$T/gen"
"$TOP/tests/fuzz/make-seeds-vhdx-open.sh" "$T/gen" "$VHDKIT"
"$bin" "$TOP/tests/fuzz/seeds-vhdx-open" "$TOP/tests/fuzz/crashers-vhdx-open" "$T/gen"
