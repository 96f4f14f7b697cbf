#!/usr/bin/env bash
# Lost, truncated, corrupted, stale or swapped tracking files (IMAGE.rct,
# IMAGE.mrt; docs/FORMAT-rct.md RCT-6): every query with an old ID either
# fails with 32775 (and says a full backup is needed) or answers a superset
# of the truth — never a false negative, never another code.  Checked in a
# read-only view first, then after a read-write session that writes more,
# and then a new reference point must work exactly.
# Work on tmpfs unless told otherwise: these tests are bound by fsync.
[ -n "${TMPDIR:-}" ] || { [ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm; } || true
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/rct-lib.sh"

M=$((1 << 20)) K=1024
mkdir "$T/base" "$T/w"
IMG0=$T/base/d.vhdx
"$VHDKIT" create "$IMG0" --size 64M --block-size 1M
"$VHDKIT" rct enable "$IMG0"
rct_checkpoint "$IMG0" >/dev/null
rct_write "$IMG0" 0 $((64 * K))
rct_write "$IMG0" $((5 * M + 512)) 4096
rct_checkpoint "$IMG0" >/dev/null
cp "$IMG0" "$T/stale.vhdx"; cp "$IMG0.rct" "$T/stale.rct"; cp "$IMG0.mrt" "$T/stale.mrt"
rct_write "$IMG0" $((20 * M)) $((3 * M))
rct_zero "$IMG0" $((40 * M)) $((128 * K))
rct_checkpoint "$IMG0" >/dev/null
rct_write "$IMG0" $((63 * M + 900 * K)) $((124 * K))   # into leaf page 1 (past 63.75 MiB)
rct_write "$IMG0" $((7 * M)) 512
check_ids "$IMG0" exact
cp "$LEDGER" "$T/base.ledger"; cp "$IDS" "$T/base.ids"
[ -e "$IMG0.mrt" ] || fail "no $IMG0.mrt after a clean close"
RCT_SIZE=$(stat -c %s "$IMG0.rct")
info "IMAGE.rct is $RCT_SIZE bytes, IMAGE.mrt $(stat -c %s "$IMG0.mrt")"

IMG=$T/w/d.vhdx
reset () { rm -f "$T"/w/*; cp "$IMG0" "$IMG0.rct" "$IMG0.mrt" "$T/w/"; cp "$T/base.ledger" "$LEDGER"; cp "$T/base.ids" "$IDS"; }

# Each old ID: 32775 with the sentence, or a superset of the truth.
check_damaged () {   # check_damaged WHAT
  local what=$1 g size id n total rc
  g=65536; size=$((64 * M))
  total=$(wc -l < "$LEDGER")
  while read -r id n; do
    rc=0
    "$VHDKIT" changes "$IMG" --limit-id "$id" --all > "$T/got" 2> "$T/err" || rc=$?
    if [ "$rc" = 0 ]; then
      sed -n "$((n + 1)),${total}p" "$LEDGER" > "$T/want"
      rangecheck superset "$g" "$size" "$T/got" "$T/want" ||
        fail "$what: ID $id answered with a FALSE NEGATIVE"
    else
      grep -q '(32775)' "$T/err" || fail "$what: ID $id: expected 32775 or an answer, got: $(cat "$T/err")"
      grep -qi 'full backup' "$T/err" || fail "$what: 32775 without the full-backup sentence: $(cat "$T/err")"
    fi
  done < "$IDS"
}

# The whole cycle for one kind of damage (done by the command DAMAGE...).
NVALID=0 NINVALID=0 NOVER=0
cycle () {   # cycle WHAT DAMAGE-CMD...
  local what=$1 en; shift
  info "damage: $what"
  reset
  "$@"
  check_damaged "$what (read-only view)"
  "$VHDKIT" rct status "$IMG" > /dev/null 2>"$T/err" ||
    grep -qE '\((32775|32779)\)' "$T/err" || fail "$what: rct status: $(cat "$T/err")"
  rct_write "$IMG" $((30 * M)) 4096
  check_damaged "$what (after a writing session)"
  "$VHDKIT" check "$IMG" > /dev/null || fail "$what: vhdkit check fails on the image"
  en=$(rct_status_field "$IMG" Enabled)
  if [ "$en" = true ]; then
    if "$VHDKIT" changes "$IMG" --limit-id "$(head -n 1 "$IDS" | cut -d' ' -f1)" >/dev/null 2>&1; then
      NVALID=$((NVALID + 1))
    else
      NINVALID=$((NINVALID + 1))
    fi
    # New reference points work: no false negative.  Exactness is only
    # reported: damage the library has not noticed yet when the reference
    # point is made (a leaf page not loaded so far) may show up later as
    # changes in a generation after it.
    : > "$LEDGER"; : > "$IDS"
    rct_checkpoint "$IMG" >/dev/null || fail "$what: no checkpoint after the damage"
    rct_write "$IMG" $((50 * M)) 8192
    rct_write "$IMG" $((63 * M + 1000 * K)) 512
    check_ids "$IMG" superset
    if ! ( check_ids "$IMG" exact ) > /dev/null 2>"$T/exact.err"; then
      info "$what: NOTE: a reference point made after the damage over-reports: $(grep -m1 OVER-REPORT "$T/exact.err")"
      NOVER=$((NOVER + 1))
    fi
    # Once the damage is known, the next reference point is exact again.
    : > "$LEDGER"; : > "$IDS"
    rct_checkpoint "$IMG" >/dev/null
    rct_write "$IMG" $((63 * M + 1000 * K)) 512
    rct_write "$IMG" $((10 * M)) 4096
    check_ids "$IMG" exact
  else
    info "$what: tracking is off afterwards (IMAGE.rct gone)"
    [ ! -e "$IMG.rct" ] || fail "$what: status says disabled but $IMG.rct exists"
  fi
}

flip () {   # flip FILE OFFSET...: invert one byte at each OFFSET
  local f=$1 o; shift
  for o in "$@"; do
    "$PY" -c '
import sys
f, o = sys.argv[1], int(sys.argv[2])
with open(f, "r+b") as h:
    h.seek(o); b = h.read(1)
    if not b: sys.exit(0)
    h.seek(o); h.write(bytes([b[0] ^ 0xff]))' "$f" "$o"
  done
}

# ---- deleted ----
cycle "IMAGE.rct deleted" rm -f "$IMG.rct"
cycle "IMAGE.mrt deleted" rm -f "$IMG.mrt"
cycle "both deleted" rm -f "$IMG.rct" "$IMG.mrt"
# ---- truncated ----
LEAF=$((13 * M))          # leaf pages start here (FORMAT-rct.md, G = 64 KiB)
for sz in 0 100 4096 65536 "$LEAF" $((LEAF + 2048)) $((RCT_SIZE - 1)); do
  [ "$sz" -lt "$RCT_SIZE" ] || continue
  cycle "IMAGE.rct truncated to $sz" truncate -s "$sz" "$IMG.rct"
done
for sz in 0 2048; do
  cycle "IMAGE.mrt truncated to $sz" truncate -s "$sz" "$IMG.mrt"
done
# ---- corrupted: one byte flipped ----
# Header A and B (magic, CRC, epoch, generation, fingerprint, size history,
# reason), an L1 page, leaf page 0 (the tags of written blocks: 0, 80
# (5 MiB), 320 (20 MiB), 640 (40 MiB)), its trailer, leaf page 1.
for o in 0 8 24 44 48 56 144 152 2048 $((4096 + 44)) 65536 $((65536 + 4092)) \
         "$LEAF" $((LEAF + 80 * 4 + 3)) $((LEAF + 320 * 4 + 3)) $((LEAF + 640 * 4 + 3)) \
         $((LEAF + 4088)) $((LEAF + 4096 + 4)) $((RCT_SIZE - 1)); do
  [ "$o" -lt "$RCT_SIZE" ] || continue
  cycle "IMAGE.rct byte $o flipped" flip "$IMG.rct" "$o"
done
# Bytes zeroed rather than flipped: tags become "never changed" (lower),
# pages become "never written" (all zero).
zero_bytes () {   # zero_bytes FILE OFFSET COUNT
  "$PY" -c '
import sys
f, o, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(f, "r+b") as h:
    h.seek(o); h.write(bytes(n))' "$@"
}
cycle "the tag of block 320 (20 MiB) zeroed" zero_bytes "$IMG.rct" $((LEAF + 320 * 4)) 4
cycle "the tags of blocks 0..1019 zeroed" zero_bytes "$IMG.rct" "$LEAF" 4080
cycle "leaf page 0 zeroed (looks never written)" zero_bytes "$IMG.rct" "$LEAF" 4096
cycle "leaf page 0 and the L1 page zeroed" eval 'zero_bytes "$IMG.rct" "$LEAF" 4096; zero_bytes "$IMG.rct" 65536 4096'
cycle "leaf pages, L1 page and header high-water marks zeroed" eval \
  'zero_bytes "$IMG.rct" "$LEAF" 8192; zero_bytes "$IMG.rct" 65536 4096; zero_bytes "$IMG.rct" 128 16; zero_bytes "$IMG.rct" $((4096 + 128)) 16'
cycle "both header copies damaged" flip "$IMG.rct" 44 $((4096 + 44))
cycle "both header CRCs damaged" flip "$IMG.rct" 8 $((4096 + 8))
for o in 0 100 4080 4092; do
  cycle "IMAGE.mrt byte $o flipped" flip "$IMG.mrt" "$o"
done
cycle "IMAGE.mrt filled with ones" "$PY" -c 'open(__import__("sys").argv[1], "wb").write(b"\xff" * 4096)' "$IMG.mrt"
cycle "IMAGE.rct zeroed (same size)" "$PY" -c '
import os, sys; n = os.path.getsize(sys.argv[1]); open(sys.argv[1], "wb").write(bytes(n))' "$IMG.rct"
cycle "IMAGE.rct garbage (same size)" "$PY" -c '
import os, random, sys; n = os.path.getsize(sys.argv[1]); r = random.Random(1)
open(sys.argv[1], "wb").write(bytes(r.getrandbits(8) for _ in range(min(n, 1 << 20))) + bytes(max(0, n - (1 << 20))))' "$IMG.rct"
# ---- stale: tracking files of an earlier session put back ----
stale_files () { cp "$T/stale.rct" "$IMG.rct"; cp "$T/stale.mrt" "$IMG.mrt"; }
cycle "stale IMAGE.rct and IMAGE.mrt" stale_files
cycle "stale IMAGE.rct only" cp "$T/stale.rct" "$IMG.rct"
cycle "stale IMAGE.mrt only" cp "$T/stale.mrt" "$IMG.mrt"
# ---- another image's tracking files ----
other () {
  rm -f "$T/o.vhdx" "$T/o.vhdx.rct" "$T/o.vhdx.mrt"
  "$VHDKIT" create "$T/o.vhdx" --size 64M --block-size 1M
  "$VHDKIT" rct enable "$T/o.vhdx"
  "$VHDKIT" rct checkpoint "$T/o.vhdx" >/dev/null
  "$VHDKIT" write "$T/o.vhdx" --offset 0 --length 512 --zero
  cp "$T/o.vhdx.rct" "$IMG.rct"; cp "$T/o.vhdx.mrt" "$IMG.mrt"
}
cycle "another image's tracking files" other
# The stale image itself (an older copy of the image with the current
# tracking files): its content is older, so every answer must be 32775
# or cover the truth as well.
stale_image () { cp "$T/stale.vhdx" "$IMG"; }
cycle "an older copy of the image with current tracking files" stale_image
info "after damage with tracking on: $NVALID kept old IDs valid, $NINVALID invalidated them; $NOVER over-reported for a reference point made after the damage"
