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
  local parents=("$base") bsizes=(2M 1M 32M) fresh=() chains=()
  prev=$base
  for d in $(seq 1 "$depth"); do
    img=$dir/child$d.vhdx
    local bs=${bsizes[$((d-1))]}
    vk create "$img" --type differencing --parent "$prev" --block-size "$bs"
    expect_info "$img" Type=4 MaxInternalSize="$size" ChainDepth=$((d+1)) \
      ParentPath="*/$(basename "$prev")"
    # Untouched child reads as its parent (vhdkit now; libvhdi on a fresh
    # sibling at the end, so that a failure there does not hide the rest).
    got=$(vk_sha "$img"); same "vhdkit read of untouched $(basename "$img")" "$got" "$(file_sha "$dir/expect.raw")"
    vk create "$dir/fresh$d.vhdx" --type differencing --parent "$prev" --block-size "$bs"
    cp "$dir/expect.raw" "$dir/fresh$d.raw"
    fresh+=("$d")
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
    chains[$d]="${parents[*]}"
    parents=("$img" "${parents[@]}")
    prev=$img
  done
  for d in "${fresh[@]}"; do
    untouched+=("$dir/fresh$d.vhdx ${chains[$d]}")
  done
  # The base was never written through the children.
  qemu_check "$base"
  got=$(qemu_sha "$base"); same "qemu-img reads base under depth $depth" "$got" "$(file_sha "$dir/base.raw")"
}
untouched=()

chain 1
chain 2
chain 3

# Untouched children (no payload block and no sector bitmap block allocated
# yet) read as their parent in libvhdi too.
for c in "${untouched[@]}"; do
  # shellcheck disable=SC2086   # "child parent grandparent ...", no spaces in $T
  set -- $c
  got=$(vhdi_sha "$@")
  same "libvhdi read of untouched differencing child $(basename "$(dirname "$1")")/$(basename "$1")" \
    "$got" "$(file_sha "${1%.vhdx}.raw")"
done
