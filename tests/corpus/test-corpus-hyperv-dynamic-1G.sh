#!/usr/bin/env bash
# Hyper-V (Windows 8 / Server 2012) dynamic VHDX: 29 of 32 blocks in state
# ZERO, 512/4096 sectors, 32 MiB blocks (qemu-iotests sample image).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/corpus-lib.sh"

rel=qemu-iotests/iotest-dynamic-1G.vhdx.bz2
f=$(corpus_copy "$rel")
check_vhdx "$f" d3d112d8dab7fd360609f7d5a7b769904b7a2a7d7b6b8c535f65a23293c05478 \
  3 1073741824 33554432 512 4096 \
  VirtualDiskId=fc7209f1-f6eb-4616-9b77-e994e3017ddd \
  DataWriteGuid=d247cbb2-15b6-404b-9133-790733d694c0 ChainDepth=1

# The README's description of the content, checked piecewise so that a
# failure says where: 0xa5 for 0..33M, 0x96 for 33M..66M, then zeros.
M=1048576
pat () { head -c "$2" /dev/zero | tr '\0' "\\$(printf %o "$1")" | sha_stdin; }
got=$("$VHDKIT" read "$f" --offset 0 --length $((33*M)) | sha_stdin)
same "iotest-dynamic-1G 0..33M (0xa5)" "$got" "$(pat 0xa5 $((33*M)))"
got=$("$VHDKIT" read "$f" --offset $((33*M)) --length $((33*M)) | sha_stdin)
same "iotest-dynamic-1G 33M..66M (0x96)" "$got" "$(pat 0x96 $((33*M)))"
got=$("$VHDKIT" read "$f" --offset $((66*M)) --length $((1024*M-66*M)) | sha_stdin)
same "iotest-dynamic-1G 66M..1G (zero)" "$got" "$(pat 0 $((1024*M-66*M)))"

corpus_intact "$rel"
