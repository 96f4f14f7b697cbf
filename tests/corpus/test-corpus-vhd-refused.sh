#!/usr/bin/env bash
# VHD (version 1) files are not VHDX: vhdkit must recognise them and refuse
# them with Not Supported (32770) and a message that says VHD — for info,
# read and check, whatever the file is called — and never touch them.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/corpus-lib.sh"

vhds='
dfvfs/vhd/ext2.vhd.xz
dfvfs/vhd/fat-differential.vhd.xz
dfvfs/vhd/fat-parent.vhd.xz
dfvfs/vhd/image-differential.vhd.xz
dfvfs/vhd/image.vhd.xz
dfvfs/vhd/ntfs-differential.vhd.xz
dfvfs/vhd/ntfs-dynamic.vhd.xz
dfvfs/vhd/ntfs-fixed.vhd.xz
dfvfs/vhd/ntfs-parent.vhd.xz
dissect.hypervisor/dynamic.vhd.gz
dissect.hypervisor/fixed.vhd.gz
qemu-iotests/d2v-zerofilled.vhd.bz2
qemu-iotests/hyperv2012r2-dynamic.vhd.bz2
qemu-iotests/virtualpc-dynamic.vhd.bz2
'

refused () {
  local f=$1 verb before rc
  before=$(file_sha "$f")
  for verb in info read check; do
    rc=0
    timeout 60 "$VHDKIT" "$verb" "$f" >/dev/null 2>"$T/err" || rc=$?
    [ "$rc" -ne 0 ] || fail "'vhdkit $verb $(basename "$f")' accepted a VHD (v1) file"
    [ "$rc" -lt 124 ] || fail "'vhdkit $verb $(basename "$f")' crashed or hung (exit $rc): $(cat "$T/err")"
    grep -q '(32770)' "$T/err" || fail "'vhdkit $verb $(basename "$f")': expected Not Supported (32770), got: $(cat "$T/err")"
    grep -qw 'VHD' "$T/err" || fail "'vhdkit $verb $(basename "$f")': the message does not say VHD: $(cat "$T/err")"
  done
  [ "$(file_sha "$f")" = "$before" ] || fail "vhdkit modified $(basename "$f")"
}

one_vhd () {
  local f
  f=$(corpus_copy "$1")
  refused "$f"
  corpus_intact "$1"
}

# Detection is by content, not by name: a VHD renamed to .vhdx is still VHD.
disguised () {
  local f
  f=$(corpus_copy dfvfs/vhd/ntfs-dynamic.vhd.xz)
  cp "$f" "$T/disguised.vhdx"
  refused "$T/disguised.vhdx"
}

failed=()
while read -r -u 3 rel; do
  [ -n "$rel" ] || continue
  try one_vhd "$rel"
  [ "$try_rc" -eq 0 ] || failed+=("$rel")
done 3<<<"$vhds"
try disguised
[ "$try_rc" -eq 0 ] || failed+=("ntfs-dynamic.vhd renamed to .vhdx")

[ ${#failed[@]} -eq 0 ] || fail "VHD files not refused properly: ${failed[*]}"
