#!/usr/bin/env bash
# Windows 10 1909 VHD API: fixed VHDX, 10 MiB, MBR at sector 0, 0xFF at 2 MiB.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/corpus-lib.sh"

rel=dissect.hypervisor/fixed.vhdx.gz
f=$(corpus_copy "$rel")
check_vhdx "$f" bc0be4623b15aa84216fb31ba24e3b621ec7f1c72d198c990ac0eced222d9f62 \
  2 10485760 2097152 512 4096 \
  VirtualDiskId=4a49d245-db0a-4634-9818-9f93db5ba6c1 \
  DataWriteGuid=bfc189a1-751c-44ff-b60f-98d07b2950c0 ChainDepth=1

# MBR boot signature at the end of sector 0.
sig=$("$VHDKIT" read "$f" --offset 0 --length 512 | tail -c 2 | od -An -tx1 | tr -d ' \n')
[ "$sig" = 55aa ] || fail "sector 0 of dissect fixed.vhdx does not end in 55 aa (got '$sig')"
corpus_intact "$rel"
