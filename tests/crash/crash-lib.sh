# Crash-at-every-sync and fault-at-every-I/O loops for one operation.
# Source after tests/lib.sh.  The test defines:
#   make_base DIR   create the starting image(s) in DIR; IMG names the one
#                   the operation acts on (relative to DIR)
#   op DIR          run the operation on DIR/$IMG (the vhdkit process
#                   under test; VHDKIT_SIM is set around it)
#   view DIR        print the bytes that must hold old-or-new contents
#                   (default: vhdkit read DIR/$IMG)
#   extra_verify W  optional: more checks after each crash or fault
# NO_QEMU=1 skips qemu (differencing images); QEMU_CONTENT=0 skips only
# comparing qemu's reading of the whole disk (huge sparse disks).
# and calls crash_loop and fault_loop.
need qemu-img
use_sim_cli

view () { "$VHDKIT" read "$1/$IMG"; }

# sectorcmp OLD NEW GOT: every 512-byte sector of GOT equals OLD's or NEW's.
sectorcmp () {
  "$VHDKIT_BUILD/tests/rawcmp" oneof "$1" "$2" "$3"
}

# qemu_view DIR: what qemu reads after replaying the log itself (only
# for images without a parent: qemu cannot open differencing VHDX).
qemu_view () {
  local copy=$T/qemu-copy.vhdx
  cp "$1/$IMG" "$copy"
  qemu-img check -q -r all -f vhdx "$copy" >/dev/null 2>&1 || true
  qemu-img check -q -f vhdx "$copy" || fail "qemu-img check failed after qemu replayed the log"
  qemu-img convert -f vhdx -O raw "$copy" "$T/qemu.raw"
  cat "$T/qemu.raw"
}

reset_work () { rm -rf "$T/work"; cp -a "$T/base" "$T/work"; }

# After a crash or a failed operation: the image must check clean, hold
# old-or-new contents, replay cleanly, and (without a parent) satisfy qemu.
verify_after () {
  local what=$1
  "$VHDKIT" check "$T/work/$IMG" >"$T/check.out" 2>&1 ||
    fail "$what: vhdkit check failed: $(cat "$T/check.out")"
  view "$T/work" > "$T/got.raw" || fail "$what: cannot read the image back"
  sectorcmp "$T/old.raw" "$T/new.raw" "$T/got.raw" || fail "$what: contents are neither old nor new"
  if [ "${NO_QEMU:-0}" = 0 ] && [ "${QEMU_CONTENT:-1}" = 1 ]; then
    qemu_view "$T/work" > "$T/gotq.raw"
    "$VHDKIT" read "$T/work/$IMG" | cmp -s - "$T/gotq.raw" ||
      fail "$what: qemu reads other bytes than vhdkit after its own log replay"
  fi
  "$VHDKIT" check --repair "$T/work/$IMG" >/dev/null 2>&1 || fail "$what: vhdkit check --repair failed"
  if [ "${NO_QEMU:-0}" = 0 ]; then
    qemu-img check -q -f vhdx "$T/work/$IMG" || fail "$what: qemu-img check failed after repair"
  fi
  view "$T/work" | cmp -s - "$T/got.raw" || fail "$what: contents changed on repair"
  if declare -F extra_verify >/dev/null; then extra_verify "$what"; fi
}

setup_refs () {
  if [ ! -d "$T/base" ]; then
    mkdir -p "$T/base"
    make_base "$T/base"
  fi
  view "$T/base" > "$T/old.raw"
  reset_work
  op "$T/work" || fail "the operation fails without faults"
  view "$T/work" > "$T/new.raw"
  cmp -s "$T/old.raw" "$T/new.raw" && fail "the operation changes nothing: the test could not fail"
  return 0
}

count_ops () {   # count_ops KIND -> number of KIND (writes/syncs) the op makes
  reset_work
  VHDKIT_SIM=count VHDKIT_SIM_COUNT_FILE=$T/count op "$T/work" >/dev/null 2>&1 ||
    fail "the operation fails under VHDKIT_SIM=count"
  sed -n "s/.*$1=\([0-9]*\).*/\1/p" "$T/count"
}

crash_loop () {
  setup_refs
  local syncs n rc
  syncs=$(count_ops syncs)
  [ "$syncs" -gt 0 ] || fail "the operation made no sync: nothing to crash at"
  info "crashing at each of $syncs sync points"
  for n in $(sweep_points "$syncs"); do
    for seed in 1 2; do
      reset_work
      rc=0
      VHDKIT_SIM=crash:n=$n:seed=$((n * 7 + seed)) op "$T/work" >/dev/null 2>&1 || rc=$?
      [ "$rc" = 99 ] || fail "crash at sync $n: expected the simulated crash (exit 99), got exit $rc"
      verify_after "crash at sync $n (seed $seed)"
    done
  done
}

fault_loop () {   # fault_loop KIND (write|sync)
  setup_refs
  local kind=$1 total n
  total=$(count_ops "${kind}s")
  info "failing each of $total ${kind}s"
  for n in $(sweep_points "$total"); do
    reset_work
    if VHDKIT_SIM=fault:op=$kind:n=$n op "$T/work" >/dev/null 2>"$T/err"; then
      fail "$kind $n failed but the operation reported success"
    fi
    grep -q 'vhdkit: .*(327[0-9][0-9]): ' "$T/err" || fail "$kind $n: no error sentence: $(cat "$T/err")"
    verify_after "$kind $n failed"
  done
}
