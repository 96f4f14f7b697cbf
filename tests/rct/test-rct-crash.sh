#!/usr/bin/env bash
# Power loss (VHDKIT_SIM=crash:n=N:seed=S, exit 99) at every sync point of
# `vhdkit write`, `vhdkit write --discard`, `vhdkit resize` (grow) and
# `vhdkit rct checkpoint` on a tracked VHDX (INV-1, INV-3, RCT-2..4).
# After each crash:
#  - every earlier ID still answers (a crash never forces a full backup:
#    no 32775, the same epoch) and covers every change made since it;
#    the operation in flight counts as far as it reached the disk: every
#    sector of its range that no longer holds the old bytes must be
#    reported (a grow counts if the disk has the new size);
#  - vhdkit check passes, check --repair and then qemu-img check pass;
#  - the old IDs are checked again after a read-write session, and a new
#    reference point made after the crash is exact.
# Work on tmpfs unless told otherwise: these tests are bound by fsync.
[ -n "${TMPDIR:-}" ] || { [ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm; } || true
. "$(dirname "$0")/../lib.sh"
use_sim_cli
. "$(dirname "$0")/rct-lib.sh"
need qemu-img

K=1024 M=$((1 << 20))
SIZE=$((24 * M))
mkdir "$T/base"
IMG0=$T/base/d.vhdx
"$VHDKIT" create "$IMG0" --size 24M --block-size 1M
"$VHDKIT" rct enable "$IMG0"
rct_checkpoint "$IMG0" >/dev/null
rct_write "$IMG0" $((2 * M)) $((1536 * K))
rct_write "$IMG0" $((7 * M)) $((2 * M))
rct_checkpoint "$IMG0" >/dev/null
rct_write "$IMG0" $((12 * M + 512)) 4096
rct_zero "$IMG0" $((20 * M)) $((64 * K))
rct_checkpoint "$IMG0" >/dev/null
rct_write "$IMG0" $((1 * M)) 512
check_ids "$IMG0" exact
EPOCH=$(rct_status_field "$IMG0" Epoch)
cp "$LEDGER" "$T/base.ledger"; cp "$IDS" "$T/base.ids"
"$VHDKIT" read "$IMG0" > "$T/old.raw"
head -c $((3 * M)) /dev/urandom > "$T/data"

IMG=$T/work/d.vhdx
reset_work () {
  rm -rf "$T/work"; cp -a "$T/base" "$T/work"
  cp "$T/base.ledger" "$LEDGER"; cp "$T/base.ids" "$IDS"
}

# The operations.  op_ledger prints the ledger line of the change the op
# makes (empty for a checkpoint).
OPS="write discard grow checkpoint"
op () {
  case $1 in
    write)      "$VHDKIT" write "$IMG" --offset $((2560 * K)) < "$T/data" ;;
    discard)    "$VHDKIT" write "$IMG" --offset $((6 * M + 512)) --length $((2 * M)) --discard ;;
    grow)       "$VHDKIT" resize "$IMG" --size $((30 * M)) ;;
    checkpoint) "$VHDKIT" rct checkpoint "$IMG" > /dev/null ;;
  esac
}
op_ledger () {
  case $1 in
    write)   echo "w $((2560 * K)) $((3 * M))" ;;
    discard) echo "w $((6 * M + 512)) $((2 * M))" ;;
    grow)    echo "g $SIZE $((6 * M))" ;;
  esac
}

after_crash () {   # after_crash OPNAME WHAT
  local name=$1 what=$2 line off len size
  line=$(op_ledger "$name")
  : > "$T/extra"
  size=$(disk_size "$IMG") || fail "$what: the image does not open after the crash"
  case $name in
    write|discard)
      # What of the op reached the disk must be reported.
      set -- $line; off=$2 len=$3
      "$VHDKIT" read "$IMG" --offset "$off" --length "$len" > "$T/now.part" ||
        fail "$what: cannot read the image after the crash"
      dd if="$T/old.raw" of="$T/old.part" bs=512 skip=$((off / 512)) count=$((len / 512)) status=none
      diff_sectors "$T/old.part" "$T/now.part" "$off" > "$T/extra" ;;
    grow)
      if [ "$size" = $((30 * M)) ]; then echo "$line" >> "$LEDGER"
      elif [ "$size" != "$SIZE" ]; then fail "$what: size $size is neither old nor new"
      fi ;;
  esac
  # Read-only view first (changes opens read-only), then the rest.
  [ "$(rct_status_field "$IMG" Epoch)" = "$EPOCH" ] ||
    fail "$what: the crash started a new epoch: $(rct_status_field "$IMG" Problem)"
  check_ids "$IMG" superset "$T/extra" || fail "$what"
  "$VHDKIT" check "$IMG" > "$T/check.out" 2>&1 || fail "$what: vhdkit check: $(cat "$T/check.out")"
  "$VHDKIT" check --repair "$IMG" > /dev/null 2>&1 || fail "$what: vhdkit check --repair failed"
  qemu-img check -q -f vhdx "$IMG" || fail "$what: qemu-img check failed after repair"
  # A writing session, then the old IDs again, and a new exact one.
  cp "$IDS" "$T/ids.pre"
  rct_write "$IMG" $((15 * M)) 4096
  [ "$(rct_status_field "$IMG" Epoch)" = "$EPOCH" ] ||
    fail "$what: the first writer after the crash started a new epoch: $(rct_status_field "$IMG" Problem)"
  IDS_FILE=$T/ids.pre check_ids "$IMG" superset "$T/extra"
  : > "$IDS"
  rct_checkpoint "$IMG" > /dev/null
  rct_write "$IMG" $((16 * M)) 512
  rct_zero "$IMG" $((17 * M)) $((128 * K))
  check_ids "$IMG" exact
  IDS_FILE=$T/ids.pre check_ids "$IMG" superset "$T/extra"
  [ "$(rct_status_field "$IMG" Recovered)" = false ] || fail "$what: Recovered is still set after clean sessions"
  qemu-img check -q -f vhdx "$IMG" || fail "$what: qemu-img check failed at the end"
}

total=0
for name in $OPS; do
  reset_work
  VHDKIT_SIM=count VHDKIT_SIM_COUNT_FILE=$T/count op "$name" > /dev/null 2>&1 < /dev/null ||
    fail "$name fails under VHDKIT_SIM=count"
  syncs=$(sed -n 's/.*syncs=\([0-9]*\).*/\1/p' "$T/count")
  [ "$syncs" -gt 0 ] || fail "$name made no sync"
  info "$name: crashing at each of $syncs sync points"
  seeds="1"; [ "$name" = write ] && seeds="1 2"
  for n in $(sweep_points "$syncs"); do
    for seed in $seeds; do
      reset_work
      rc=0
      VHDKIT_SIM=crash:n=$n:seed=$((n * 13 + seed)) op "$name" > /dev/null 2>&1 || rc=$?
      [ "$rc" = 99 ] || fail "$name: crash at sync $n: expected the simulated crash (exit 99), got $rc"
      after_crash "$name" "$name, VHDKIT_SIM=crash:n=$n:seed=$((n * 13 + seed))"
      total=$((total + 1))
    done
  done
done
info "$total crashes checked"
