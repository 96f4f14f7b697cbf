#!/usr/bin/env bash
# VHD Set operations under power loss and I/O failure (docs/FORMAT-vhds.md
# VS-1, VS-4, VS-6): snapshot, delete (merging the base away, merging a
# middle image, keeping a reference point) and apply, crashed at every
# sync point and failed at every sync.  After each: the set opens; every
# snapshot that exists reads its exact content; the leaf reads the old
# or the new content; the changes since the first snapshot cover every
# sector that differs from it (no false negative); every member checks
# clean; `set optimize` then finishes the job and leaves no stray files.
. "$(dirname "$0")/../lib.sh"
use_sim_cli
need jq

V=$VHDKIT
S1=11111111-1111-4111-8111-111111111111
S2=22222222-2222-4222-8222-222222222222
S3=33333333-3333-4333-8333-333333333333

make_set () {
  local d=$1
  mkdir -p "$d"
  "$V" create "$d/d.vhdx" --size 16M --block-size 1M >/dev/null
  head -c 3M /dev/urandom | "$V" write "$d/d.vhdx" --offset 1M
  "$V" set convert "$d/d.vhdx" --granularity 4K
  "$V" set snapshot "$d/d.vhds" --id $S1 >/dev/null
  head -c 1M /dev/urandom | "$V" write "$d/d.vhds" --offset 2M
  head -c 64K /dev/urandom | "$V" write "$d/d.vhds" --offset 9M
  "$V" set snapshot "$d/d.vhds" --id $S2 >/dev/null
  head -c 512K /dev/urandom | "$V" write "$d/d.vhds" --offset 12M
  "$V" write "$d/d.vhds" --zero --offset 1M --length 64K
}

mkdir -p "$T/ref"
make_set "$T/base"
for s in $S1 $S2; do "$V" read "$T/base/d.vhds@$s" > "$T/ref/$s.raw"; done
"$V" read "$T/base/d.vhds" > "$T/ref/leaf-old.raw"

reset_work () { rm -rf "$T/work"; cp -a "$T/base" "$T/work"; }

# covers OLD NEW RANGES: every 512-byte sector that differs between OLD
# and NEW lies inside one of the "OFFSET LENGTH" lines of RANGES.
covers () {
  "$VHDKIT_BUILD/tests/rawcmp" covers "$1" "$2" "$3"
}

# verify WHAT OPNAME: the checks after a crash or a failed operation.
verify () {
  local what=$1 w=$T/work s ids
  "$V" set info "$w/d.vhds" > "$T/info.out" 2>&1 || fail "$what: the set does not open: $(cat "$T/info.out")"
  ids=$("$V" set snapshots "$w/d.vhds" --json |
        jq -r '.Snapshots[] | select(.SnapshotPath != null and .SnapshotPath != "") | .SnapshotId')
  for s in $ids; do
    [ -f "$T/ref/$s.raw" ] || continue
    "$V" read "$w/d.vhds@$s" | cmp -s - "$T/ref/$s.raw" || fail "$what: snapshot $s does not read its content"
  done
  "$V" read "$w/d.vhds" > "$T/leaf.raw" || fail "$what: the leaf does not read"
  cmp -s "$T/leaf.raw" "$T/ref/leaf-old.raw" || cmp -s "$T/leaf.raw" "$T/ref/leaf-new.raw" ||
    fail "$what: the leaf reads neither the old nor the new content"
  # No false negative since S1 (a snapshot or a reference point, if kept).
  if "$V" changes "$w/d.vhds" --limit-id $S1 --all > "$T/ch.out" 2>"$T/ch.err"; then
    covers "$T/ref/$S1.raw" "$T/leaf.raw" "$T/ch.out" || fail "$what: changes since S1 miss a changed sector"
  else
    grep -q '(32775)' "$T/ch.err" || fail "$what: changes since S1 failed: $(cat "$T/ch.err")"
  fi
  for f in "$w"/*.avhdx "$w"/*.vhdx; do
    [ -e "$f" ] || continue
    grep -qF "$f" "$T/info.out" || continue      # stray files are checked below
    "$V" check "$f" >/dev/null 2>"$T/chk.err" || fail "$what: $f does not check clean: $(cat "$T/chk.err")"
  done
  "$V" set optimize "$w/d.vhds" 2>"$T/opt.err" || fail "$what: set optimize failed: $(cat "$T/opt.err")"
  "$V" set info "$w/d.vhds" --json > "$T/info.json" || fail "$what: the set does not open after optimize"
  for f in "$w"/*; do
    case $f in *.vhds) continue ;; esac
    b=${f%.rct}; b=${b%.mrt}
    grep -qF "\"$b\"" "$T/info.json" || fail "$what: stray file $f after optimize"
  done
  "$V" read "$w/d.vhds" | cmp -s - "$T/leaf.raw" || fail "$what: optimize changed the leaf's content"
}

run_case () {   # run_case NAME COMMAND...
  local name=$1 syncs n rc; shift
  reset_work
  "$@" "$T/work/d.vhds" >/dev/null || fail "$name: fails without faults"
  "$V" read "$T/work/d.vhds" > "$T/ref/leaf-new.raw"
  reset_work
  VHDKIT_SIM=count VHDKIT_SIM_COUNT_FILE=$T/count "$@" "$T/work/d.vhds" >/dev/null 2>&1 ||
    fail "$name: fails under VHDKIT_SIM=count"
  syncs=$(sed -n 's/.*syncs=\([0-9]*\).*/\1/p' "$T/count")
  [ "${syncs:-0}" -gt 0 ] || fail "$name: no sync to crash at"
  info "$name: crashing at each of $syncs sync points, failing each sync"
  for n in $(sweep_points "$syncs"); do
    reset_work
    rc=0
    VHDKIT_SIM=crash:n=$n:seed=$((n * 13 + 5)) "$@" "$T/work/d.vhds" >/dev/null 2>&1 || rc=$?
    [ "$rc" = 99 ] || fail "$name: crash at sync $n: expected exit 99, got $rc"
    verify "$name: crash at sync $n"
    reset_work
    if VHDKIT_SIM=fault:op=sync:n=$n "$@" "$T/work/d.vhds" >/dev/null 2>"$T/err"; then
      fail "$name: sync $n failed but the operation reported success"
    fi
    grep -q 'vhdkit: .*(327[0-9][0-9]): ' "$T/err" || fail "$name: sync $n: no error sentence: $(cat "$T/err")"
    verify "$name: sync $n failed"
  done
}

snapshot () { "$V" set snapshot "$1" --id $S3; }
delete_base () { "$V" set delete "$1" $S1 --no-progress; }
delete_base_keep () { "$V" set delete "$1" $S1 --persist-reference --no-progress; }
delete_middle () { "$V" set delete "$1" $S2 --no-progress; }
apply_first () { "$V" set apply "$1" $S1; }

run_case snapshot snapshot
run_case "delete S1 (the base merged away)" delete_base
run_case "delete S1, keeping a reference point" delete_base_keep
run_case "delete S2 (a middle image merged away)" delete_middle
run_case "apply S1" apply_first
exit 0
