#!/usr/bin/env bash
# docs/API.md is what `vhdkitd --api-doc` prints from the method table:
# the documented methods, parameters, CIM types and return codes cannot
# drift from what the daemon serves.  Also: every method of the table is
# exercised by some daemon test (its name appears in tests/daemon/).
. "$(dirname "$0")/../lib.sh"
VHDKITD=$VHDKIT_BUILD/vhdkitd
[ -x "$VHDKITD" ] || fail "$VHDKITD is missing"
"$VHDKITD" --api-doc > "$T/API.md"
if ! diff -u "$TOP/docs/API.md" "$T/API.md" > "$T/diff"; then
  cat "$T/diff" >&2
  fail "docs/API.md differs from the method table: run 'build/vhdkitd --api-doc > docs/API.md'"
fi
n=0
for m in $(sed -n 's/^### //p' "$T/API.md"); do
  n=$((n + 1))
  grep -q "$m" "$TOP"/tests/daemon/test-daemon-*.sh || fail "method $m is not called by any tests/daemon test"
done
[ "$n" -ge 20 ] || fail "only $n methods in the API reference"
info "docs/API.md matches the table ($n methods)"
