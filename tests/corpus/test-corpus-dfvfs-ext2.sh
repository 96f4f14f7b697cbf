#!/usr/bin/env bash
# QEMU 5.2 (qemu-img convert): regions with the "required" flag 0, and the
# two headers differ in DataWriteGuid (the one with the higher sequence
# number, header 2, is current: ae1e35d5-…).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/corpus-lib.sh"

rel=dfvfs/ext2.vhdx
f=$(corpus_copy "$rel")
check_vhdx "$f" a6c2f0e39afe6c6ab432ca5465349fcefe8dc944398e97b2d957d3f89dbb5d80 \
  3 4194304 8388608 512 512 \
  VirtualDiskId=92f22ac3-6a03-3e4e-8c95-ae03377b7007 \
  DataWriteGuid=ae1e35d5-bfa6-1844-bb89-aa99d2217262 ChainDepth=1
corpus_intact "$rel"
