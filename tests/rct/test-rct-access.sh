#!/usr/bin/env bash
# 32769 (Access Denied) from `vhdkit changes` and `vhdkit rct` when the
# image or its tracking file cannot be opened (EACCES).  File modes do not
# stop root: as root the test runs itself again as user nobody (setpriv),
# and if that is impossible it SKIPS (exit 77) rather than pass.
# Work on tmpfs unless told otherwise: these tests are bound by fsync.
[ -n "${TMPDIR:-}" ] || { [ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm; } || true
. "$(dirname "$0")/../lib.sh"

if [ "$(id -u)" = 0 ]; then
  script=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
  if command -v setpriv >/dev/null 2>&1 &&
     setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$VHDKIT" 2>/dev/null &&
     setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$script" 2>/dev/null; then
    info "running as root: running this test again as user nobody"
    rc=0
    TMPDIR=/tmp setpriv --reuid=65534 --regid=65534 --clear-groups bash "$script" || rc=$?
    exit "$rc"
  fi
  skip "running as root and cannot become user nobody: file modes cannot deny root, so 32769 (Access Denied) for an unreadable image or tracking file was NOT tested"
fi
. "$(dirname "$0")/rct-lib.sh"

IMG=$T/d.vhdx
"$VHDKIT" create "$IMG" --size 16M
"$VHDKIT" rct enable "$IMG"
ID=$(rct_checkpoint "$IMG")
rct_write "$IMG" 0 4096

chmod 000 "$IMG"
expect_fail 32769 "$VHDKIT" changes "$IMG" --limit-id "$ID"
expect_fail 32769 "$VHDKIT" rct status "$IMG"
expect_fail 32769 "$VHDKIT" rct checkpoint "$IMG"
chmod 644 "$IMG"

# A read-only image: a writer is refused, a reader still gets answers.
chmod 444 "$IMG"
expect_fail 32769 "$VHDKIT" rct checkpoint "$IMG"
check_ids "$IMG" exact
chmod 644 "$IMG"

# The tracking file unreadable: refused or 32775, never a wrong answer.
chmod 000 "$IMG.rct"
if "$VHDKIT" changes "$IMG" --limit-id "$ID" --all > "$T/got" 2>"$T/err"; then
  fail "changes answered although $IMG.rct cannot be read: $(cat "$T/got")"
fi
grep -qE '\((32769|32775)\)' "$T/err" || fail "unreadable tracking file: $(cat "$T/err")"
chmod 644 "$IMG.rct"
check_ids "$IMG" exact
