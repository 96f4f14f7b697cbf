#!/usr/bin/env bash
# Windows 10 diskpart: the fixed parent of ntfs-differential, on its own.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/corpus-lib.sh"

rel=dfvfs/ntfs-parent.vhdx
f=$(corpus_copy "$rel")
check_vhdx "$f" c5523065bc6ef82267be56c5f8888e2876ead8ba7edba2a65a3da8b076231b68 \
  2 4194304 2097152 512 4096 \
  VirtualDiskId=d62318cc-56ce-42e2-898d-16e1d1c9843e \
  DataWriteGuid=7584f8fb-36d3-4091-afb5-b1afe587bfa8 ChainDepth=1
corpus_intact "$rel"
