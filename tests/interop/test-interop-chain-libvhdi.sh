#!/usr/bin/env bash
# Differencing chains of depth 1, 2 and 3 made by vhdkit: every level
# writes sector-sized pieces over its parent's data (partially present
# blocks, sector bitmaps), zeroes and discards over parent data (which must
# then read as zeros, not as the parent), and libvhdi — given the parents
# with set_parent — reads exactly what vhdkit reads.  The base stays a valid
# image that qemu-img reads unchanged.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/peer-lib.sh"
need_vhdkit
need qemu-img
M=1048576

chain () {
  local depth=$1 d size=$((48*M + 512)) base prev img
  local dir=$T/depth$depth
  mkdir -p "$dir"
  base=$dir/base.vhdx
  vk create "$base" --size "$size" --type dynamic --block-size 1M
  mk_expect "$dir/expect.raw" "$size"
  write_pattern "$base" "$dir/expect.raw" "$size" "$M"
  rand_write "$base" "$dir/expect.raw" $((10*M)) $((6*M))
  cp "$dir/expect.raw" "$dir/base.raw"
  local parents=("$base") bsizes=(2M 1M 32M)
  prev=$base
  for d in $(seq 1 "$depth"); do
    img=$dir/child$d.vhdx
    local bs=${bsizes[$((d-1))]}
    vk create "$img" --type differencing --parent "$prev" --block-size "$bs"
    expect_info "$img" Type=4 MaxInternalSize="$size" ChainDepth=$((d+1)) \
      ParentPath="*/$(basename "$prev")"
    # Untouched child reads as its parent.
    expect_content "$img" "$dir/expect.raw" "${parents[@]}"
    # Sector-granular writes inside blocks that hold parent data.
    rand_write "$img" "$dir/expect.raw" $((d*512)) 512
    rand_write "$img" "$dir/expect.raw" $((10*M + d*4096 + 512)) 1536
    rand_write "$img" "$dir/expect.raw" $((2*M - 512*d)) $((1024*d))
    rand_write "$img" "$dir/expect.raw" $((11*M + 512)) $((2*M + 512*d))
    zero_write "$img" "$dir/expect.raw" $((12*M + 4096*d)) 8192 --zero
    zero_write "$img" "$dir/expect.raw" $((14*M)) $((d*M)) --discard
    rand_write "$img" "$dir/expect.raw" $((size - 512)) 512
    expect_content "$img" "$dir/expect.raw" "${parents[@]}"
    local rc=0
    "$VHDKIT" check "$img" >"$T/check.out" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || fail "vhdkit check $(basename "$img") (depth $d) exited $rc: $(cat "$T/check.out")"
    parents=("$img" "${parents[@]}")
    prev=$img
  done
  # The base was never written through the children.
  qemu_check "$base"
  got=$(qemu_sha "$base"); same "qemu-img reads base under depth $depth" "$got" "$(file_sha "$dir/base.raw")"
  rm -rf "$dir"
}

chain 1
chain 2
chain 3
