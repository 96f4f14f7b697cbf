#!/usr/bin/env bash
# Growing a tracked image (RCT-8): for every ID made before the grow, the
# new area is reported as changed (byte-exact or rounded out to G); for an
# ID made after it, nothing of it is, until written.  Grows by G-aligned and
# unaligned amounts, two grows in one generation, a grow followed by writes
# into the new area, for VHDX and raw images.  After a clean close
# everything is exact (INV-3).
# Work on tmpfs unless told otherwise: these tests are bound by fsync.
[ -n "${TMPDIR:-}" ] || { [ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm; } || true
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/rct-lib.sh"

K=1024 M=$((1 << 20))

grow_round () {   # grow_round IMG
  local img=$1
  : > "$LEDGER"; : > "$IDS"
  "$VHDKIT" rct enable "$img"
  rct_checkpoint "$img" > /dev/null
  rct_write "$img" $((1 * M)) 4096
  rct_checkpoint "$img" > /dev/null
  rct_grow "$img" $((48 * M))                          # aligned
  check_ids "$img" exact
  rct_checkpoint "$img" > /dev/null                    # made after the grow
  check_ids "$img" exact
  rct_write "$img" $((40 * M)) 512                     # into the new area
  rct_grow "$img" $((48 * M + 3 * 512))                # unaligned
  rct_checkpoint "$img" > /dev/null
  rct_grow "$img" $((48 * M + 64 * K + 7 * 512))       # from an unaligned size
  check_ids "$img" exact
  # Two grows in one generation, then a reference point: nothing of either
  # may be reported for it.
  rct_grow "$img" $((50 * M))
  rct_grow "$img" $((52 * M))
  rct_checkpoint "$img" > /dev/null
  check_ids "$img" exact
  rct_write "$img" $((51 * M)) 512
  check_ids "$img" exact
  # A grow, a write, and a grow again in one generation.
  rct_grow "$img" $((53 * M))
  rct_write "$img" $((52 * M + 512)) 512
  rct_grow "$img" $((54 * M))
  check_ids "$img" exact
  rct_checkpoint "$img" > /dev/null
  check_ids "$img" exact
  # The window edges of the grown disk.
  local size id
  size=$(disk_size "$img")
  id=$(head -n 1 "$IDS" | cut -d' ' -f1)
  "$VHDKIT" changes "$img" --limit-id "$id" --offset $((size - 512)) --length 512 > "$T/edge" ||
    fail "a window at the end of the grown disk was refused"
  [ "$(cat "$T/edge")" = "$((size - 512)) 512" ] ||
    fail "the last sector of the grown disk is not reported for the first ID: $(cat "$T/edge")"
}

"$VHDKIT" create "$T/d.vhdx" --size 32M --block-size 1M
grow_round "$T/d.vhdx"
"$VHDKIT" check "$T/d.vhdx" > /dev/null || fail "vhdkit check fails after the grows"
"$VHDKIT" create "$T/d.img" --size 32M
grow_round "$T/d.img"
