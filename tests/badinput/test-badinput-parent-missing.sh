#!/usr/bin/env bash
# Differencing chains with a missing link: the parent (or a grandparent) is
# gone — File not found (32779), naming the missing file; the parent is not
# a VHDX at all; the parent is a different image than the one recorded
# (DataWriteGuid differs from parent_linkage).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/badinput-lib.sh"

make_base
vk create "$T/mid.vhdx" --type differencing --parent "$T/base.vhdx"
vk create "$T/top.vhdx" --type differencing --parent "$T/mid.vhdx"
rand_write "$T/mid.vhdx" "$T/base.raw" $((5*M)) 4096
rand_write "$T/top.vhdx" "$T/base.raw" $((6*M)) 4096
# Premise: the intact chain reads.
got=$(vk_sha "$T/top.vhdx"); same "intact chain" "$got" "$(file_sha "$T/base.raw")"

in_dir () {  # DIR FILE...: copy files of the chain into DIR
  local d=$T/$1; shift
  mkdir -p "$d"; for x in "$@"; do cp "$T/$x" "$d/"; done
}

# info may report a child whose parent is missing (it need not open the
# chain); read and check may not.  If info fails, it must say 32779 too.
case_parent_missing () {
  in_dir p1 top.vhdx
  NAME=mid.vhdx refused "$T/p1/top.vhdx" 32779 "read check"
  survives "$T/p1/top.vhdx" info
  if [ "$verb_rc" -ne 0 ]; then grep -q '(32779)' "$T/err" || fail "info: expected 32779: $(cat "$T/err")"; fi
}
case_grandparent_missing () {
  in_dir p2 top.vhdx mid.vhdx
  NAME=base.vhdx refused "$T/p2/top.vhdx" 32779 "read check"
  survives "$T/p2/top.vhdx" info
}
case_parent_not_vhdx () {
  in_dir p3 top.vhdx
  printf 'this is not a virtual disk\n' >"$T/p3/mid.vhdx"
  refused "$T/p3/top.vhdx" "" "read check"
}
case_parent_is_directory () {
  in_dir p4 top.vhdx
  mkdir "$T/p4/mid.vhdx"
  refused "$T/p4/top.vhdx" "" "read check"
}
case_parent_replaced () {
  # Another image under the parent's name: linkage mismatch, refused.
  in_dir p5 top.vhdx base.vhdx
  vk create "$T/p5/mid.vhdx" --type differencing --parent "$T/p5/base.vhdx"
  refused "$T/p5/top.vhdx" "" "read check"
}

run_cases case_parent_missing case_grandparent_missing case_parent_not_vhdx \
  case_parent_is_directory case_parent_replaced
