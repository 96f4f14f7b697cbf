#!/usr/bin/env bash
# Merging a depth-3 chain down, one level at a time: after each
# "vhdkit merge CHILD" the parent reads what the child read before, and the
# merged child itself still reads the same in vhdkit (its parent changed
# DataWriteGuid; MS-VHDX's parent_linkage2 lets it follow — libvhdi 20210425
# checks parent_linkage only, so it is not asked to).  At the end the base holds everything, passes qemu-img check and
# reads identically in qemu-img.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/peer-lib.sh"
need_vhdkit
need qemu-img
M=1048576
size=$((40*M))

vk create "$T/base.vhdx" --size "$size" --type dynamic --block-size 1M
mk_expect "$T/expect.raw" "$size"
write_pattern "$T/base.vhdx" "$T/expect.raw" "$size" "$M"
prev=$T/base.vhdx
for d in 1 2 3; do
  vk create "$T/c$d.vhdx" --type differencing --parent "$prev"
  rand_write "$T/c$d.vhdx" "$T/expect.raw" $((d*M/2 + 512)) $((3*M + 1024))
  rand_write "$T/c$d.vhdx" "$T/expect.raw" $((20*M + d*512)) 512
  zero_write "$T/c$d.vhdx" "$T/expect.raw" $((5*M + d*8192)) 4096 --zero
  prev=$T/c$d.vhdx
done
# chain: c3 -> c2 -> c1 -> base
expect_content "$T/c3.vhdx" "$T/expect.raw" "$T/c2.vhdx" "$T/c1.vhdx" "$T/base.vhdx"
want=$(file_sha "$T/expect.raw")

# merged_reads_same CHILD WANT: a merged-away child reads as before (vhdkit).
merged_reads_same () {
  local got
  got=$(vk_sha "$1")
  same "vhdkit read of $(basename "$1") after it was merged" "$got" "$2"
}

vk merge "$T/c3.vhdx"
expect_content "$T/c2.vhdx" "$T/expect.raw" "$T/c1.vhdx" "$T/base.vhdx"
merged_reads_same "$T/c3.vhdx" "$want"

vk merge "$T/c2.vhdx"
expect_content "$T/c1.vhdx" "$T/expect.raw" "$T/base.vhdx"
merged_reads_same "$T/c2.vhdx" "$want"
merged_reads_same "$T/c3.vhdx" "$want"

vk merge "$T/c1.vhdx"
expect_content "$T/base.vhdx" "$T/expect.raw" qemu
expect_info "$T/base.vhdx" Type=3 ChainDepth=1 MaxInternalSize="$size"
for c in c1 c2 c3; do merged_reads_same "$T/$c.vhdx" "$want"; done

# Merging a one-level chain made straight from a fixed base.
vk create "$T/fbase.vhdx" --size 16M --type fixed --block-size 1M
mk_expect "$T/f.raw" $((16*M))
rand_write "$T/fbase.vhdx" "$T/f.raw" 0 $((16*M))
vk create "$T/fchild.vhdx" --type differencing --parent "$T/fbase.vhdx"
rand_write "$T/fchild.vhdx" "$T/f.raw" $((3*M + 512)) $((5*M))
zero_write "$T/fchild.vhdx" "$T/f.raw" $((9*M)) $((2*M)) --discard
vk merge "$T/fchild.vhdx"
expect_content "$T/fbase.vhdx" "$T/f.raw" qemu
merged_reads_same "$T/fchild.vhdx" "$(file_sha "$T/f.raw")"
