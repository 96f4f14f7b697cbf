#!/usr/bin/env bash
# Replay the seeds and past crashers of fuzz-rct-sidecar (damaged
# tracking files) without libFuzzer; run under ASan/UBSan too.
. "$(dirname "$0")/../lib.sh"
bin=$VHDKIT_BUILD/tests/fuzz-rct-sidecar-replay
[ -x "$bin" ] || fail "$bin is not built"
"$bin" "$TOP/tests/fuzz/seeds-rct-sidecar" "$TOP/tests/fuzz/crashers-rct-sidecar"
