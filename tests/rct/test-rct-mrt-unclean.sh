#!/usr/bin/env bash
# The write-ahead map (IMAGE.mrt) damaged, lost or replaced after an
# UNCLEAN close, when it is the only record of the writes in flight
# (docs/FORMAT-rct.md RCT-10).  The process writes in two tracking leaf
# pages that lie in two different bit pages of the map, then dies without
# a flush; the map is then mutated.  For every mutation, every old ID must
# answer 32775 (with the full-backup sentence) or a superset of the truth:
# in a read-only view, after a writing session, and after that again.  A
# map that cannot belong to the session (missing, empty, header gone,
# another image's, another session's) must give 32775, and stay so for
# every later opener.
[ -n "${TMPDIR:-}" ] || { [ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm; } || true
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/rct-lib.sh"
DISKOPS=$VHDKIT_BUILD/tests/diskops
[ -x "$DISKOPS" ] || fail "$DISKOPS is missing (make all builds it)"

# Granularity 512: a leaf page covers 510 KiB and a bit page of the map
# 32640 leaf pages (about 15.9 GiB), so a 17 GiB disk has two bit pages.
G=512 M=$((1 << 20)) K=1024
SIZE=$((17 * 1024 * M))
FAR=$((16 * 1024 * M + 3 * M))        # in the second bit page
mkdir "$T/base"
IMG0=$T/base/d.vhdx
"$VHDKIT" create "$IMG0" --size "$SIZE" --block-size 1M
head -c $((2 * M)) /dev/urandom | "$VHDKIT" write "$IMG0" --offset 0
"$VHDKIT" rct enable "$IMG0" --granularity "$G"
rct_checkpoint "$IMG0" >/dev/null
rct_write "$IMG0" $((64 * K)) 4096
rct_checkpoint "$IMG0" >/dev/null
cp "$IMG0.mrt" "$T/clean.mrt"

# crash_session IMG: writes that reach the image, then death without a
# flush (diskops "exit" is _exit: no flush, no close).
crash_session () {
  local img=$1
  echo "w 0 8192" >> "$LEDGER"
  echo "w $((3 * M)) 65536" >> "$LEDGER"
  echo "w $FAR 4096" >> "$LEDGER"
  "$DISKOPS" "$img" write 0 8K 0xc1 , write 3M 64K 0xc2 , write "$FAR" 4K 0xc3 , exit > "$T/ops" ||
    fail "diskops: $(cat "$T/ops")"
  grep -q fail "$T/ops" && fail "a write failed without a fault: $(cat "$T/ops")"
  return 0
}
crash_session "$IMG0"
cp "$IMG0.mrt" "$T/session1.mrt"
[ "$(stat -c %s "$IMG0.mrt")" -ge $((3 * 4096)) ] ||
  fail "the map has fewer than 3 pages (header and two bit pages): $(stat -c %s "$IMG0.mrt") bytes"
# The untouched crash state answers exactly what was written, rounded to
# leaf pages (RCT-4): a superset.
check_ids "$IMG0" superset
cp "$LEDGER" "$T/base.ledger"; cp "$IDS" "$T/base.ids"

# A second crashed image, for "another image's map".
mkdir "$T/other"
O=$T/other/d.vhdx
cp "$T/base/d.vhdx" "$O"
( LEDGER=$T/other.ledger; IDS=$T/other.ids; : > "$LEDGER"; : > "$IDS"
  "$VHDKIT" rct enable "$O" --granularity "$G"
  crash_session "$O" )

IMG=$T/w/d.vhdx
reset () { rm -rf "$T/w"; cp -a "$T/base" "$T/w"; cp "$T/base.ledger" "$LEDGER"; cp "$T/base.ids" "$IDS"; }

# Each old ID: 32775 with the sentence, or a superset of the truth.
# Prints "invalid" or "valid" per ID.
check_old () {   # check_old WHAT
  local what=$1 id n total rc
  total=$(wc -l < "$LEDGER")
  while read -r id n; do
    rc=0
    "$VHDKIT" changes "$IMG" --limit-id "$id" --all > "$T/got" 2> "$T/err" || rc=$?
    if [ "$rc" = 0 ]; then
      sed -n "$((n + 1)),${total}p" "$LEDGER" > "$T/want"
      rangecheck superset "$G" "$SIZE" "$T/got" "$T/want" ||
        fail "$what: ID $id answered with a FALSE NEGATIVE"
      echo valid
    else
      grep -q '(32775)' "$T/err" || fail "$what: ID $id: expected 32775 or an answer, got: $(cat "$T/err")"
      grep -qi 'full backup' "$T/err" || fail "$what: 32775 without the full-backup sentence: $(cat "$T/err")"
      echo invalid
    fi
  done < "$IDS"
}

NREFUSED=0 NKEPT=0
mutate () {   # mutate EXPECT WHAT CMD...: EXPECT is "invalid" or "any"
  local expect=$1 what=$2 v; shift 2
  info "$what"
  reset
  "$@"
  for phase in "read-only view" "a second read-only view"; do
    v=$(check_old "$what ($phase)" | sort -u | tr '\n' ' ')
    [ "$expect" = any ] || [ "$v" = "invalid " ] ||
      fail "$what ($phase): expected every old ID to be invalid, got: $v"
  done
  rct_write "$IMG" $((5 * M)) 4096
  v=$(check_old "$what (after a writing session)" | sort -u | tr '\n' ' ')
  [ "$expect" = any ] || [ "$v" = "invalid " ] ||
    fail "$what: a writing session made old IDs valid again: $v"
  rct_write "$IMG" $((6 * M)) 4096
  v=$(check_old "$what (after a second writing session)" | sort -u | tr '\n' ' ')
  [ "$expect" = any ] || [ "$v" = "invalid " ] ||
    fail "$what: a second writing session made old IDs valid again: $v"
  case $v in *valid*) ;; esac
  if [ "$v" = "invalid " ]; then NREFUSED=$((NREFUSED + 1)); else NKEPT=$((NKEPT + 1)); fi
  "$VHDKIT" check "$IMG" > /dev/null || fail "$what: vhdkit check fails on the image"
  # A new reference point is exact.
  : > "$LEDGER"; : > "$IDS"
  rct_checkpoint "$IMG" >/dev/null || fail "$what: no reference point after the damage"
  rct_write "$IMG" $((7 * M)) 512
  rct_write "$IMG" "$FAR" 512
  check_ids "$IMG" exact
}

zero_at () {   # zero_at FILE OFFSET COUNT
  "$PY" -c '
import sys
f, o, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(f, "r+b") as h:
    h.seek(o); h.write(bytes(n))' "$@"
}
flip () {   # flip FILE OFFSET
  "$PY" -c '
import sys
f, o = sys.argv[1], int(sys.argv[2])
with open(f, "r+b") as h:
    h.seek(o); b = h.read(1); h.seek(o); h.write(bytes([b[0] ^ 0x5a]))' "$@"
}
P=4096
mutate invalid "IMAGE.mrt deleted" rm -f "$IMG.mrt"
mutate invalid "IMAGE.mrt truncated to 0" truncate -s 0 "$IMG.mrt"
mutate invalid "IMAGE.mrt truncated to 100 bytes" truncate -s 100 "$IMG.mrt"
mutate any "IMAGE.mrt truncated to its header" truncate -s $P "$IMG.mrt"
mutate any "IMAGE.mrt cut after its first bit page" truncate -s $((2 * P)) "$IMG.mrt"
mutate invalid "the header page zeroed" zero_at "$IMG.mrt" 0 $P
mutate any "bit page 0 zeroed" zero_at "$IMG.mrt" $P $P
mutate any "bit page 1 zeroed" zero_at "$IMG.mrt" $((2 * P)) $P
mutate any "the whole map zeroed but the header" zero_at "$IMG.mrt" $P $((2 * P))
for o in 0 9 20 40 48 4092; do
  mutate invalid "header byte $o flipped" flip "$IMG.mrt" "$o"
done
mutate any "a bit of bit page 0 flipped" flip "$IMG.mrt" $P
mutate any "the trailer of bit page 1 flipped" flip "$IMG.mrt" $((3 * P - 4))
mutate invalid "IMAGE.mrt filled with ones" "$PY" -c '
import os, sys; n = os.path.getsize(sys.argv[1]); open(sys.argv[1], "wb").write(b"\xff" * n)' "$IMG.mrt"
mutate invalid "another crashed image's IMAGE.mrt" cp "$O.mrt" "$IMG.mrt"
mutate invalid "the map of the last clean close put back" cp "$T/clean.mrt" "$IMG.mrt"
# An older session's map: crash again after recovery, then restore the
# map of the first crashed session.
older_session () {
  "$DISKOPS" "$IMG" write 9M 4K 0xd1 , exit > /dev/null
  echo "w $((9 * M)) 4096" >> "$LEDGER"
  cp "$T/session1.mrt" "$IMG.mrt"
}
mutate invalid "the map of an older crashed session put back" older_session
info "$NREFUSED mutations invalidated every old ID, $NKEPT kept some valid (with supersets)"
[ "$NKEPT" -gt 0 ] || fail "no mutation kept an ID valid: the superset checks never ran on an answer"
