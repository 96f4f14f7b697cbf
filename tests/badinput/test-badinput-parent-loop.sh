#!/usr/bin/env bash
# Parent loops: a differencing image whose locator names itself (with its
# own DataWriteGuid as the linkage, so that only the loop is wrong), and two
# images that name each other.  Opening must stop with an error — no
# endless recursion, no stack overflow, no hang.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/badinput-lib.sh"

make_base
vk create "$T/a.vhdx" --type differencing --parent "$T/base.vhdx"
vk create "$T/b.vhdx" --type differencing --parent "$T/base.vhdx"
rand_write "$T/a.vhdx" "$T/base.raw" $((2*M)) 4096
dwg () { "$PY" "$MUT" get "$1" current.data_write_guid; }

case_self_loop () {
  local f=$T/self.vhdx
  cp "$T/a.vhdx" "$f"
  mut retarget "$f" self.vhdx "$(dwg "$f")"
  refused "$f"
}
case_two_cycle () {
  mkdir -p "$T/cyc"
  cp "$T/a.vhdx" "$T/cyc/x.vhdx"; cp "$T/b.vhdx" "$T/cyc/y.vhdx"
  mut retarget "$T/cyc/x.vhdx" y.vhdx "$(dwg "$T/cyc/y.vhdx")"
  mut retarget "$T/cyc/y.vhdx" x.vhdx "$(dwg "$T/cyc/x.vhdx")"
  refused "$T/cyc/x.vhdx"
  refused "$T/cyc/y.vhdx"
}
# A loop further up: c -> x -> y -> x.
case_loop_above () {
  mkdir -p "$T/up"
  cp "$T/a.vhdx" "$T/up/x.vhdx"; cp "$T/b.vhdx" "$T/up/y.vhdx"; cp "$T/a.vhdx" "$T/up/c.vhdx"
  mut retarget "$T/up/x.vhdx" y.vhdx "$(dwg "$T/up/y.vhdx")"
  mut retarget "$T/up/y.vhdx" x.vhdx "$(dwg "$T/up/x.vhdx")"
  mut retarget "$T/up/c.vhdx" x.vhdx "$(dwg "$T/up/x.vhdx")"
  NAME=c.vhdx refused "$T/up/c.vhdx"
}

run_cases case_self_loop case_two_cycle case_loop_above
