#!/usr/bin/env bash
# A large differencing child written in one place only: its other chunks
# (2048 blocks of 2 MiB = 4 GiB each) have neither payload nor sector bitmap
# blocks allocated, yet must read as the parent — in vhdkit and in libvhdi
# (Windows allocates the sector bitmap blocks of every chunk; an image
# without them must still read correctly in libvhdi, DESIGN.md §5).
# Windows of 1 MiB are compared, not the whole 10 GiB.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/peer-lib.sh"
need_vhdkit
M=1048576
G=$((1024*M))
size=$((10*G))

vk create "$T/base.vhdx" --size "$size" --type dynamic --block-size 2M
mk_expect "$T/expect.raw" "$size"
for off in 0 $((4*G + M)) $((9*G)) $((size - M)); do
  rand_write "$T/base.vhdx" "$T/expect.raw" "$off" "$M"
done
vk create "$T/child.vhdx" --type differencing --parent "$T/base.vhdx"
rand_write "$T/child.vhdx" "$T/expect.raw" 512 1024      # chunk 0 only

for off in 0 $((4*G + M)) $((9*G)) $((size - M)); do
  want=$(dd if="$T/expect.raw" bs=1M skip=$((off / M)) count=1 status=none | sha_stdin)
  got=$("$VHDKIT" read "$T/child.vhdx" --offset "$off" --length "$M" | sha_stdin)
  same "vhdkit read of the child at $off" "$got" "$want"
  got=$("$PY" "$VHDI_READ" range "$T/child.vhdx" "$off" "$M" "$T/base.vhdx")
  same "libvhdi read of the child at $off (chunk $((off / (4*G))))" "$got" "$want"
done
