#!/usr/bin/env bash
# vhdkit convert: raw -> VHDX -> raw is byte-identical; the VHDX is valid for
# qemu-img and libvhdi; zero ranges of the input stay unallocated (the VHDX
# of a half-zero input is much smaller than the input); VHDX -> VHDX with a
# new block size and type keeps the content; a qemu-made VHDX converts too.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/peer-lib.sh"
need_vhdkit
need qemu-img qemu-io
M=1048576
size=$((64*M))

# Input: random data in every other 2 MiB (plus one sector inside a zero
# stretch), zeros elsewhere: 32 MiB of data + 1 sector.
src=$T/src.raw
truncate -s "$size" "$src"
for i in $(seq 0 4 63); do
  head -c $((2*M)) /dev/urandom | dd of="$src" bs=1M seek="$i" conv=notrunc status=none
done
head -c 512 /dev/urandom | dd of="$src" bs=512 seek=$((34*2048 + 5)) conv=notrunc status=none
data=$((32*M + 512))

# raw -> dynamic VHDX (1 MiB blocks)
vk convert "$src" "$T/d.vhdx" --format vhdx --type dynamic --block-size 1M
expect_info "$T/d.vhdx" Format=3 Type=3 MaxInternalSize="$size" BlockSize=$M
expect_content "$T/d.vhdx" "$src" qemu
fs=$(info_get "$T/d.vhdx" FileSize)
[ "$fs" = "$(stat -c %s "$T/d.vhdx")" ] || fail "FileSize $fs is not the file's size $(stat -c %s "$T/d.vhdx")"
# 33 allocated MiB of data plus metadata (headers, log, BAT, metadata).
limit=$((data + M + 16*M))
[ "$fs" -le "$limit" ] || fail "converting a half-zero input gave a $fs-byte VHDX (input $size bytes, $data of them data): zero ranges were allocated"
alloc=$(info_get "$T/d.vhdx" AllocatedBytes)
[ "$alloc" -le $((data + M)) ] || fail "AllocatedBytes $alloc for $data bytes of data: zero ranges were allocated"
info "half-zero $size-byte input -> $fs-byte VHDX, $alloc bytes allocated"

# VHDX -> raw: identical bytes.
vk convert "$T/d.vhdx" "$T/back.raw" --format raw
cmp "$src" "$T/back.raw" || fail "raw -> VHDX -> raw is not byte-identical"

# raw -> fixed VHDX -> raw
vk convert "$src" "$T/f.vhdx" --format vhdx --type fixed --block-size 32M
expect_info "$T/f.vhdx" Type=2 MaxInternalSize="$size" BlockSize=$((32*M))
[ "$(stat -c %s "$T/f.vhdx")" -ge "$size" ] || fail "a fixed VHDX is smaller than its virtual size"
expect_content "$T/f.vhdx" "$src" qemu
vk convert "$T/f.vhdx" "$T/back2.raw" --format raw
cmp "$src" "$T/back2.raw" || fail "raw -> fixed VHDX -> raw is not byte-identical"

# VHDX -> VHDX: new block size (1 MiB: the data lies in every other MiB), fixed -> dynamic; still sparse.
vk convert "$T/f.vhdx" "$T/d2.vhdx" --format vhdx --type dynamic --block-size 1M
expect_info "$T/d2.vhdx" Type=3 BlockSize=$((1*M))
expect_content "$T/d2.vhdx" "$src" qemu
fs2=$(info_get "$T/d2.vhdx" FileSize)
[ "$fs2" -le $((data + 2*M + 16*M)) ] || fail "fixed -> dynamic conversion did not stay sparse ($fs2 bytes)"

# All-zero input: nothing allocated.
truncate -s "$size" "$T/zero.raw"
vk convert "$T/zero.raw" "$T/z.vhdx" --format vhdx --type dynamic
expect_content "$T/z.vhdx" "$T/zero.raw" qemu
alloc=$(info_get "$T/z.vhdx" AllocatedBytes)
[ "$alloc" = 0 ] || fail "an all-zero input allocated $alloc bytes"

# A qemu-made VHDX converts to the raw qemu reads.
qemu-img create -q -f vhdx -o subformat=dynamic,block_size=8M "$T/q.vhdx" 40M
qemu-io -f vhdx -c 'write -P 0x61 1M 3M' -c 'write -P 0x62 39M 1M' "$T/q.vhdx" >/dev/null
qemu-img convert -f vhdx -O raw "$T/q.vhdx" "$T/q-ref.raw"
vk convert "$T/q.vhdx" "$T/q.raw" --format raw
cmp "$T/q-ref.raw" "$T/q.raw" || fail "vhdkit convert of a qemu-made VHDX differs from qemu-img convert"
