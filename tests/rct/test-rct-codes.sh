#!/usr/bin/env bash
# Return codes of `vhdkit changes` and `vhdkit rct` (DESIGN.md §3 table):
# 32773 malformed IDs, misaligned or out-of-range windows, bad
# granularity; 32775 unknown epoch, never-issued generation, tracking
# disabled or never enabled, enabling twice; 32770 a TargetSnapshotId on a
# plain image; 32779 a missing file; 32774 a second writer (the image or
# its tracking file locked with flock(2) by another process).  32769 is in
# test-rct-access.sh (it cannot be provoked as root).
# Work on tmpfs unless told otherwise: these tests are bound by fsync.
[ -n "${TMPDIR:-}" ] || { [ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm; } || true
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/rct-lib.sh"
need flock

IMG=$T/d.vhdx
SIZE=$((64 << 20))
"$VHDKIT" create "$IMG" --size 64M
# Before tracking: no ID can be valid, and no reference point can be made.
expect_fail 32775 "$VHDKIT" changes "$IMG" --limit-id "rctX:00000000:0000:0000:0000:000000000001:00000001"
grep -qi 'full backup' "$T/expect_fail.err" || fail "32775 without tracking does not say a full backup is needed"
expect_fail 32775 "$VHDKIT" rct checkpoint "$IMG"
[ "$(rct_status_field "$IMG" Enabled)" = false ] || fail "status says Enabled before rct enable"

# Bad granularities.
for g in 3000 4M 256 100K 1; do
  expect_fail 32773 "$VHDKIT" rct enable "$IMG" --granularity "$g"
done
[ ! -e "$IMG.rct" ] || fail "a refused rct enable left $IMG.rct behind"

"$VHDKIT" rct enable "$IMG"
expect_fail 32775 "$VHDKIT" rct enable "$IMG"
[ "$(rct_status_field "$IMG" Granularity)" = 65536 ] || fail "default granularity is not 64K"
ID1=$(rct_checkpoint "$IMG")
rct_write "$IMG" $((1 << 20)) 8192
ID2=$(rct_checkpoint "$IMG")
rct_write "$IMG" $((5 << 20)) 4096
check_ids "$IMG" exact

# ---- 32773: malformed IDs ----
epoch=${ID1#rctX:}; epoch=${epoch%:*}
gen1=${ID1##*:}
for bad in "" "x" "rctX" "rctX:" "rctX::" "${ID1}0" "${ID1%?}" \
           "rctY:$epoch:$gen1" "RCTX:$epoch:$gen1" "rctX:${epoch//:/-}:$gen1" \
           "rctX:$epoch:0000000g" "rctX:$epoch:-0000001" "rctX:$epoch" \
           "rctX:${epoch%?}z:$gen1" "rctX:$epoch:$gen1:00000001" " $ID1" "$ID1 " \
           "rctX:$epoch:+0000001" "rctX:{$epoch}:$gen1"; do
  expect_fail 32773 "$VHDKIT" changes "$IMG" --limit-id "$bad" 2>/dev/null
  grep -q "^vhdkit: changes: Invalid parameter (32773): " "$T/expect_fail.err" ||
    fail "malformed ID '$bad': the error line is not 'vhdkit: changes: NAME (CODE): SENTENCE': $(cat "$T/expect_fail.err")"
done
# --json: the error object carries ReturnValue.
if "$VHDKIT" changes "$IMG" --limit-id garbage --json > "$T/j.out" 2>/dev/null; then
  fail "changes --json with a malformed ID succeeded"
fi
"$PY" -c 'import json,sys; v=json.load(open(sys.argv[1])); assert v["ReturnValue"]==32773, v' "$T/j.out" ||
  fail "changes --json with a malformed ID: ReturnValue is not 32773: $(cat "$T/j.out")"

# ---- 32773: windows ----
expect_fail 32773 "$VHDKIT" changes "$IMG" --limit-id "$ID1" --offset 1 --length 512
expect_fail 32773 "$VHDKIT" changes "$IMG" --limit-id "$ID1" --offset 511
expect_fail 32773 "$VHDKIT" changes "$IMG" --limit-id "$ID1" --offset 0 --length 513
expect_fail 32773 "$VHDKIT" changes "$IMG" --limit-id "$ID1" --offset 0 --length $((SIZE + 512))
expect_fail 32773 "$VHDKIT" changes "$IMG" --limit-id "$ID1" --offset 512 --length "$SIZE"
expect_fail 32773 "$VHDKIT" changes "$IMG" --limit-id "$ID1" --offset $((SIZE + 512)) --length 0
expect_fail 32773 "$VHDKIT" changes "$IMG" --limit-id "$ID1" --offset $((SIZE - 512)) --length 1024
expect_fail 32773 "$VHDKIT" changes "$IMG" --limit-id "$ID1" --offset 18446744073709551104 --length 1024
# ... and the edges that are allowed: offset+length = size, empty windows.
out=$("$VHDKIT" changes "$IMG" --limit-id "$ID1" --offset $((SIZE - 512)) --length 512) ||
  fail "a window ending exactly at the virtual size was refused"
[ -z "$out" ] || fail "the last sector was never written but is reported: $out"
out=$("$VHDKIT" changes "$IMG" --limit-id "$ID1" --offset 0 --length "$SIZE") ||
  fail "offset 0 + length = size was refused"
[ "$out" = "$(printf '%s\n' "1048576 65536" "5242880 65536")" ] || fail "whole-disk window: got '$out'"
"$VHDKIT" changes "$IMG" --limit-id "$ID1" --offset "$SIZE" --length 0 --json > "$T/j.out" ||
  fail "offset = size with length 0 was refused"
"$PY" -c '
import json,sys
v=json.load(open(sys.argv[1]))
assert v["ReturnValue"]==0 and v["ProcessedByteLength"]==0 and v["ChangedByteOffsets"]==[] and v["ChangedByteLengths"]==[], v' "$T/j.out" ||
  fail "an empty window at the end: $(cat "$T/j.out")"

# ---- 32775: well formed, never issued or of another epoch ----
expect_invalid "$IMG" "rctX:$epoch:7fffffff" "rctX:$epoch:00001000" \
  "rctX:01234567:89ab:4def:8123:456789abcdef:$gen1"
gen_now=$(rct_status_field "$IMG" Generation)
expect_invalid "$IMG" "rctX:$epoch:$(printf %08x "$gen_now")"   # being written, not sealed
# Generation 0 is never handed out: refused as unknown (32775) or as
# malformed (32773), never answered.
if "$VHDKIT" changes "$IMG" --limit-id "rctX:$epoch:00000000" > /dev/null 2>"$T/g0.err"; then
  fail "generation 0 was answered"
fi
grep -qE '\((32775|32773)\)' "$T/g0.err" || fail "generation 0: $(cat "$T/g0.err")"

# ---- 32770: TargetSnapshotId on a plain image ----
expect_fail 32770 "$VHDKIT" changes "$IMG" --limit-id "$ID1" --target-snapshot-id "5f2d5f83-6bd4-4b52-8b60-4d4e9e1c2a11"
expect_fail 32770 "$VHDKIT" changes "$IMG" --limit-id "$ID1" --target-snapshot-id "$ID2"

# ---- 32779: missing files ----
expect_fail 32779 "$VHDKIT" changes "$T/nonexistent.vhdx" --limit-id "$ID1"
expect_fail 32779 "$VHDKIT" rct status "$T/nonexistent.vhdx"
expect_fail 32779 "$VHDKIT" rct enable "$T/nonexistent.vhdx"
expect_fail 32779 "$VHDKIT" rct checkpoint "$T/nonexistent.vhdx"
expect_fail 32779 "$VHDKIT" rct disable "$T/nonexistent.vhdx"
expect_fail 32779 "$VHDKIT" changes "$T/no-such-dir/d.vhdx" --limit-id "$ID1"

# ---- 32774: another writer holds the image or its tracking file ----
# A background shell takes flock(2) on the file (as libvhdkit does) and
# then becomes `sleep`, so killing its pid releases the lock.
hold_lock () {   # hold_lock FILE: lock FILE exclusively in the background; sets HOLDER
  rm -f "$T/locked"
  ( exec 9<>"$1"; flock -x 9; : > "$T/locked"; exec sleep 60 ) &
  HOLDER=$!
  local i
  for i in $(seq 1 100); do
    [ -e "$T/locked" ] && return 0
    sleep 0.05
  done
  fail "could not take the lock on $1"
}
release_lock () { kill "$HOLDER" 2>/dev/null || true; wait "$HOLDER" 2>/dev/null || true; }
trap 'release_lock 2>/dev/null; rm -rf "$T"' EXIT

hold_lock "$IMG"
echo x | head -c 512 > "$T/sector"
expect_fail 32774 "$VHDKIT" write "$IMG" --offset 0 < "$T/sector"
expect_fail 32774 "$VHDKIT" rct checkpoint "$IMG"
expect_fail 32774 "$VHDKIT" rct disable "$IMG"
expect_fail 32774 "$VHDKIT" resize "$IMG" --size 128M
# A reader while a writer holds the image: 32774, or the right answer.
if "$VHDKIT" changes "$IMG" --limit-id "$ID1" --all > "$T/busy.out" 2>"$T/busy.err"; then
  [ "$(cat "$T/busy.out")" = "$(printf '%s\n' "1048576 65536" "5242880 65536")" ] ||
    fail "changes while another process holds the image answered wrongly: $(cat "$T/busy.out")"
  info "changes while the image is held: answered"
else
  grep -q '(32774)' "$T/busy.err" || fail "changes while the image is held: $(cat "$T/busy.err")"
fi
release_lock
[ -e "$IMG.rct" ] || fail "a refused rct disable removed the tracking file"
hold_lock "$IMG.rct"
expect_fail 32774 "$VHDKIT" write "$IMG" --offset 0 < "$T/sector"
expect_fail 32774 "$VHDKIT" rct checkpoint "$IMG"
release_lock
# Nothing was written while refused: the answers are unchanged.
check_ids "$IMG" exact

# ---- tracking disabled: every ID gives 32775 ----
"$VHDKIT" rct disable "$IMG"
[ ! -e "$IMG.rct" ] && [ ! -e "$IMG.mrt" ] || fail "rct disable left tracking files behind"
[ "$(rct_status_field "$IMG" Enabled)" = false ] || fail "status says Enabled after rct disable"
expect_invalid "$IMG" "$ID1" "$ID2"
expect_fail 32775 "$VHDKIT" rct checkpoint "$IMG"
if "$VHDKIT" rct disable "$IMG" 2>"$T/dis.err"; then
  info "rct disable on an untracked image succeeds (allowed)"
else
  grep -q '(32775)' "$T/dis.err" || fail "rct disable on an untracked image: $(cat "$T/dis.err")"
fi
# Enabled again: a new epoch; the old IDs stay invalid, new ones work.
"$VHDKIT" rct enable "$IMG" --granularity 4K
[ "$(rct_status_field "$IMG" Granularity)" = 4096 ] || fail "--granularity 4K not applied"
expect_invalid "$IMG" "$ID1" "$ID2"
: > "$LEDGER"; : > "$IDS"
ID3=$(rct_checkpoint "$IMG")
[ "${ID3#rctX:}" != "${ID1#rctX:}" ] || fail "re-enabling reused an ID"
rct_write "$IMG" $((3 << 20)) 512
check_ids "$IMG" exact
info "all return codes as documented"
