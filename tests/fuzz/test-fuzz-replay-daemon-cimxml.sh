#!/usr/bin/env bash
# Replay fuzz-daemon-cimxml's generated seeds (one call of every method of
# vhdkitd's table) and its past crashers without libFuzzer; run under
# ASan/UBSan too.  Every input must get its answer without a crash.
. "$(dirname "$0")/../lib.sh"
bin=$VHDKIT_BUILD/tests/fuzz-daemon-cimxml-replay
[ -x "$bin" ] || fail "$bin is not built"
mkdir -p "$T/gen" "$TOP/tests/fuzz/crashers-daemon-cimxml"
"$TOP/tests/fuzz/make-seeds-daemon-cimxml.sh" "$T/gen" "$VHDKIT" >/dev/null
[ "$(ls "$T/gen" | wc -l)" -ge 20 ] || fail "too few seeds were generated: $(ls "$T/gen")"
"$bin" "$T/gen" "$TOP/tests/fuzz/crashers-daemon-cimxml"
