#!/usr/bin/env bash
# Windows 10 diskpart: dynamic VHDX whose 32 MiB block is larger than the
# 4 MiB disk (one partial block).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/corpus-lib.sh"

rel=dfvfs/ntfs-dynamic.vhdx.xz
f=$(corpus_copy "$rel")
check_vhdx "$f" b92731f8e4bf3532418444d22a9086823a8122569500acd09cd8d2ce20eb98e9 \
  3 4194304 33554432 512 4096 \
  VirtualDiskId=affecd75-3b3c-44dc-a069-b929c0de6005 \
  DataWriteGuid=b87a16be-01fa-444d-bb2e-6f7d84832202 ChainDepth=1
corpus_intact "$rel"
