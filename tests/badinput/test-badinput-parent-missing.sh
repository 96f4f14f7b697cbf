#!/usr/bin/env bash
# Differencing chains with a missing link: the parent (or a grandparent) is
# gone — File not found (32779), naming the missing file; the parent is not
# a VHDX at all, or a directory; the parent is a different image than the
# one recorded (DataWriteGuid differs from parent_linkage).  Each case
# builds its chain in a directory of its own, so that neither the relative
# nor the absolute path in the locator can find an intact parent elsewhere.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/badinput-lib.sh"

make_base

# chain_in NAME: $T/NAME/{base,mid,top}.vhdx, top -> mid -> base.
chain_in () {
  local d=$T/$1
  mkdir -p "$d"
  cp "$T/base.vhdx" "$d/base.vhdx"
  vk create "$d/mid.vhdx" --type differencing --parent "$d/base.vhdx"
  head -c 4096 /dev/urandom | "$VHDKIT" write "$d/mid.vhdx" --offset $((5*M)) || fail "write mid"
  vk create "$d/top.vhdx" --type differencing --parent "$d/mid.vhdx"
  head -c 4096 /dev/urandom | "$VHDKIT" write "$d/top.vhdx" --offset $((6*M)) || fail "write top"
  vk read "$d/top.vhdx" --offset 0 --length 512 >/dev/null   # premise: the intact chain reads
}

# info may describe a child whose parent is missing (it need not open the
# chain); read and check may not.  If info fails, it must say 32779 too.
case_parent_missing () {
  chain_in p1; rm "$T/p1/mid.vhdx"
  NAME=mid.vhdx refused "$T/p1/top.vhdx" 32779 "read check"
  survives "$T/p1/top.vhdx" info
  if [ "$verb_rc" -ne 0 ]; then grep -q '(32779)' "$T/err" || fail "info: expected 32779: $(cat "$T/err")"; fi
}
case_grandparent_missing () {
  chain_in p2; rm "$T/p2/base.vhdx"
  NAME=base.vhdx refused "$T/p2/top.vhdx" 32779 "read check"
  survives "$T/p2/top.vhdx" info
  if [ "$verb_rc" -ne 0 ]; then grep -q '(32779)' "$T/err" || fail "info: expected 32779: $(cat "$T/err")"; fi
}
case_parent_not_vhdx () {
  chain_in p3
  printf 'this is not a virtual disk\n' >"$T/p3/mid.vhdx"
  refused "$T/p3/top.vhdx" "" "read check"
}
case_parent_is_directory () {
  chain_in p4; rm "$T/p4/mid.vhdx"; mkdir "$T/p4/mid.vhdx"
  refused "$T/p4/top.vhdx" "" "read check"
}
case_parent_replaced () {
  # Another image under the parent's name: linkage mismatch, refused.
  chain_in p5; rm "$T/p5/mid.vhdx"
  vk create "$T/p5/mid.vhdx" --type differencing --parent "$T/p5/base.vhdx"
  refused "$T/p5/top.vhdx" "" "read check"
}
case_parent_written_after () {
  # The parent was written after the child was made: linkage mismatch.
  chain_in p6
  head -c 512 /dev/urandom | "$VHDKIT" write "$T/p6/mid.vhdx" --offset 0 || fail "write mid"
  refused "$T/p6/top.vhdx" "" "read check"
}

run_cases case_parent_missing case_grandparent_missing case_parent_not_vhdx \
  case_parent_is_directory case_parent_replaced case_parent_written_after
