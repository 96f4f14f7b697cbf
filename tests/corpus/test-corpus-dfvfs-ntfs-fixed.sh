#!/usr/bin/env bash
# Windows 10 diskpart: fixed VHDX, 4 MiB, NTFS volume.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/corpus-lib.sh"

rel=dfvfs/ntfs-fixed.vhdx
f=$(corpus_copy "$rel")
check_vhdx "$f" 5237dd895f38052344e2ef35a207fe9df08cd18d17b6ea857a1b93cc475e1f2e \
  2 4194304 2097152 512 4096 \
  VirtualDiskId=c2583c64-de7e-4c9f-8613-216fc8613fb3 \
  DataWriteGuid=392e3c45-7dbf-4bf4-911f-cc0d255448d3 ChainDepth=1
corpus_intact "$rel"
