# shellcheck shell=bash
# Shared body of test-interop-vhdkit-made-{fixed,dynamic}.sh:
# made_by_vhdkit TYPE BLOCK SIZE — vhdkit creates the image and writes the
# standard pattern; qemu-img check passes; vhdkit, qemu-img and libvhdi all
# read the expected bytes; info reports the geometry.
made_by_vhdkit () {
  local type=$1 bs=$2 size=$3 img exp bsb sizeb
  bsb=$(to_bytes "$bs"); sizeb=$(to_bytes "$size")
  img=$T/$type-bs$bs-$size.vhdx
  exp=$T/$type-bs$bs-$size.raw
  info "$type, block $bs, size $size ($sizeb bytes)"
  vk create "$img" --size "$sizeb" --type "$type" --block-size "$bs"
  mk_expect "$exp" "$sizeb"
  expect_info "$img" Format=3 Type="$([ "$type" = fixed ] && echo 2 || echo 3)" \
    MaxInternalSize="$sizeb" BlockSize="$bsb" LogicalSectorSize=512 ChainDepth=1
  # Freshly created: all zeros, valid for everyone.
  expect_content "$img" "$exp" qemu
  write_pattern "$img" "$exp" "$sizeb" "$bsb"
  expect_content "$img" "$exp" qemu
  local rc=0
  "$VHDKIT" check "$img" >"$T/check.out" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || fail "vhdkit check $(basename "$img") exited $rc: $(cat "$T/check.out")"
  # qemu-img agrees on the size.
  local qsize
  qsize=$(qemu-img info -f vhdx --output=json "$img" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
  [ "$qsize" = "$sizeb" ] || fail "qemu-img info $(basename "$img"): virtual size $qsize, expected $sizeb"
  rm -f "$img" "$exp"
}
