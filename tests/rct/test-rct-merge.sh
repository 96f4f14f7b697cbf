#!/usr/bin/env bash
# Merging a differencing child into a tracked parent (`vhdkit merge`):
# every range the merge writes into the parent is reported for the
# parent's IDs, and the merge — vhdkit's own writer, even though it changes
# the parent's DataWriteGuid — keeps every ID valid (no new epoch).  Then a
# merge crashed at every sync point (VHDKIT_SIM) and run again to
# completion: the parent's IDs still answer and cover the merged ranges.
# Work on tmpfs unless told otherwise: these tests are bound by fsync.
[ -n "${TMPDIR:-}" ] || { [ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm; } || true
. "$(dirname "$0")/../lib.sh"
use_sim_cli
. "$(dirname "$0")/rct-lib.sh"
need qemu-img

K=1024 M=$((1 << 20))
mkdir "$T/base"
P=$T/base/p.vhdx C=$T/base/c.vhdx
"$VHDKIT" create "$P" --size 32M --block-size 1M
"$VHDKIT" rct enable "$P"
rct_checkpoint "$P" > /dev/null
rct_write "$P" $((4 * M)) $((1 * M))
rct_checkpoint "$P" > /dev/null
EPOCH=$(rct_status_field "$P" Epoch)
"$VHDKIT" create "$C" --parent "$P"
# The child's writes: what the merge will write into the parent.
cw () { head -c "$3" /dev/urandom | "$VHDKIT" write "$1" --offset "$2" || fail "child write failed"; echo "w $2 $3" >> "$T/child.ledger"; }
: > "$T/child.ledger"
cw "$C" 0 512
cw "$C" $((1 * M + 512)) $((3 * K))
cw "$C" $((4 * M + 512 * K)) $((1 * M))          # over the parent's own data
cw "$C" $((10 * M - 4 * K)) $((8 * K))            # across a block boundary
cw "$C" $((31 * M)) $((1 * M))                    # the end
"$VHDKIT" write "$C" --offset $((20 * M)) --length $((64 * K)) --zero || fail "child zero failed"
echo "w $((20 * M)) $((64 * K))" >> "$T/child.ledger"
# Opening the parent as a child's parent changed nothing.
check_ids "$P" exact
[ "$(rct_status_field "$P" Epoch)" = "$EPOCH" ] || fail "creating and writing a child changed the parent's epoch"
cp "$LEDGER" "$T/base.ledger"; cp "$IDS" "$T/base.ids"
"$VHDKIT" read "$C" > "$T/merged.raw"

reset_work () {
  rm -rf "$T/work"; cp -a "$T/base" "$T/work"
  cp "$T/base.ledger" "$LEDGER"; cp "$T/base.ids" "$IDS"
  P=$T/work/p.vhdx C=$T/work/c.vhdx
}

# ---- a clean merge ----
reset_work
cat "$T/child.ledger" >> "$LEDGER"
"$VHDKIT" merge "$C" || fail "vhdkit merge failed"
"$VHDKIT" read "$P" | cmp -s - "$T/merged.raw" || fail "the merged parent does not read as the child did"
[ "$(rct_status_field "$P" Epoch)" = "$EPOCH" ] ||
  fail "the merge started a new epoch (taken for a foreign writer): $(rct_status_field "$P" Problem)"
check_ids "$P" exact
rct_checkpoint "$P" > /dev/null
rct_write "$P" $((12 * M)) 512
check_ids "$P" exact
qemu-img check -q -f vhdx "$P" || fail "qemu-img check fails on the merged parent"

# ---- a merge crashed at every sync, then run again ----
reset_work
"$VHDKIT" read "$P" > "$T/parent-before.raw"
VHDKIT_SIM=count VHDKIT_SIM_COUNT_FILE=$T/count "$VHDKIT" merge "$C" > /dev/null 2>&1 ||
  fail "merge fails under VHDKIT_SIM=count"
syncs=$(sed -n 's/.*syncs=\([0-9]*\).*/\1/p' "$T/count")
info "crashing the merge at each of $syncs sync points"
for n in $(sweep_points "$syncs"); do
  reset_work
  rc=0
  VHDKIT_SIM=crash:n=$n:seed=$n "$VHDKIT" merge "$C" > /dev/null 2>&1 || rc=$?
  [ "$rc" = 99 ] || fail "merge crash at sync $n: expected exit 99, got $rc"
  # What the crashed merge got into the parent so far must be reported:
  # every sector that no longer reads as before the merge.
  "$VHDKIT" read "$P" > "$T/now.raw" || fail "merge crash at sync $n: cannot read the parent"
  diff_sectors "$T/parent-before.raw" "$T/now.raw" 0 > "$T/extra"
  check_ids "$P" superset "$T/extra"
  # Once the merge is complete, all of the child's ranges.
  cat "$T/child.ledger" >> "$LEDGER"
  "$VHDKIT" merge "$C" > "$T/merge.out" 2>&1 || fail "merge crash at sync $n: running the merge again failed: $(cat "$T/merge.out")"
  "$VHDKIT" read "$P" | cmp -s - "$T/merged.raw" || fail "merge crash at sync $n: the parent does not read as the child after the merge"
  [ "$(rct_status_field "$P" Epoch)" = "$EPOCH" ] ||
    fail "merge crash at sync $n: a new epoch: $(rct_status_field "$P" Problem)"
  check_ids "$P" superset
  "$VHDKIT" check "$P" > /dev/null 2>&1 || fail "merge crash at sync $n: vhdkit check fails on the parent"
  qemu-img check -q -f vhdx "$P" || fail "merge crash at sync $n: qemu-img check fails on the parent"
done
