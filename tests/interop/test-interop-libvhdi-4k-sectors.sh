#!/usr/bin/env bash
# 4096-byte logical sectors (no Windows-made 4Kn VHDX is public): images
# made and written by vhdkit read identically in libvhdi, which also sees
# 4096 bytes per sector.  Writes not aligned to 4096 are refused (32773).
# qemu-img 7.2 cannot create 4Kn VHDX; whether it reads them is reported,
# not required.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/peer-lib.sh"
need_vhdkit

one () {
  local type=$1 bs=$2 size=$3 img exp sizeb bsb
  sizeb=$(to_bytes "$size"); bsb=$(to_bytes "$bs")
  img=$T/4k-$type-$bs.vhdx; exp=$T/4k-$type-$bs.raw
  vk create "$img" --size "$sizeb" --type "$type" --block-size "$bs" \
    --logical-sector-size 4096 --physical-sector-size 4096
  mk_expect "$exp" "$sizeb"
  expect_info "$img" LogicalSectorSize=4096 PhysicalSectorSize=4096 \
    MaxInternalSize="$sizeb" BlockSize="$bsb"
  local bps
  bps=$("$PY" -c 'import pyvhdi,sys; f=pyvhdi.file(); f.open(sys.argv[1]); print(f.get_bytes_per_sector())' "$img")
  [ "$bps" = 4096 ] || fail "libvhdi sees $bps bytes per sector in $(basename "$img"), expected 4096"
  write_pattern "$img" "$exp" "$sizeb" "$bsb" 4096
  expect_content "$img" "$exp"

  # A write that is sector-aligned for 512 but not for 4096 is refused.
  local before
  before=$(file_sha "$img")
  head -c 512 /dev/urandom >"$T/small"
  expect_fail 32773 "$VHDKIT" write "$img" --offset 512 --length 512 <"$T/small"
  expect_fail 32773 "$VHDKIT" read "$img" --offset 4096 --length 512
  [ "$(file_sha "$img")" = "$before" ] || fail "a refused write changed $(basename "$img")"

  # qemu: try, report, do not require.
  if qemu-img convert -f vhdx -O raw "$img" "$T/q.raw" 2>"$T/q.err"; then
    if cmp -s "$T/q.raw" "$exp"; then
      info "qemu-img reads the 4Kn $type image identically"
    else
      info "NOTE: qemu-img reads the 4Kn $type image DIFFERENTLY (not required)"
    fi
  else
    info "NOTE: qemu-img cannot read the 4Kn $type image: $(head -c 300 "$T/q.err")"
  fi
  rm -f "$img" "$exp" "$T/q.raw"
}

one dynamic 1M 40M+8K
one dynamic 32M 70M
one fixed 1M 24M+4K
