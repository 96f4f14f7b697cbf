#!/usr/bin/env bash
# A real Hyper-V checkpoint (Windows 10 1809 / Server 2019): differencing
# .avhdx, 8 GiB, 32 PARTIALLY_PRESENT blocks with sector bitmaps, 23 log
# entries with a zero LogGuid (not to be replayed).  Its parent is not
# public, so it is read over an all-zero 8 GiB parent made by vhdkit whose
# DataWriteGuid is patched to the child's parent_linkage
# {ff34003b-11ed-4cf8-a166-b2be05e20b80}, placed where the locator's
# relative_path (".\Generation 1_….avhdx") points.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/corpus-lib.sh"

rel=dissect.hypervisor/differencing.avhdx.gz
linkage=ff34003b-11ed-4cf8-a166-b2be05e20b80
pname='Generation 1_49C4BAF3-4B25-4406-8C4B-D39E65C32385.avhdx'
c=$(corpus_copy "$rel")

# The test's premise: the locator says what info/dissect_differencing.txt says.
rp=$("$PY" "$MUT" locator "$c" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["entries"]["relative_path"])')
[ "$rp" = ".\\$pname" ] || fail "unexpected relative_path in differencing.avhdx: '$rp'"

# The all-zero parent: dynamic 8 GiB, 2 MiB blocks, 512/4096 sectors.
vk create "$T/zero-parent.vhdx" --size 8G --type dynamic --block-size 2M \
  --logical-sector-size 512 --physical-sector-size 4096
"$PY" "$MUT" set-data-write-guid "$T/zero-parent.vhdx" "$linkage"
mv "$T/zero-parent.vhdx" "$T/$pname"
p=$T/$pname
expect_info "$p" Type=3 MaxInternalSize=8589934592 DataWriteGuid="$linkage"
psha=$(file_sha "$p")
# Premise, independent of vhdkit's reader: libvhdi reads the child over this
# parent to the README's hash (else the parent, not the reader, is wrong).
got=$(vhdi_sha "$c" "$p")
same "libvhdi read of differencing.avhdx over the constructed zero parent" "$got" \
  fc5c91bfd8f7ee388cf482dc7eb6cef64b39a7e1bd043516ee95887b839f2b78

check_vhdx "$c" fc5c91bfd8f7ee388cf482dc7eb6cef64b39a7e1bd043516ee95887b839f2b78 \
  4 8589934592 2097152 512 4096 \
  VirtualDiskId=89ca62b5-b00d-4b8e-b79a-87e20cad5a40 \
  DataWriteGuid=b298d413-f67e-412a-9a72-c7c7fc9b6cb5 \
  ParentLinkage="$linkage" ChainDepth=2 ParentPath="*/$pname"
[ "$(file_sha "$p")" = "$psha" ] || fail "reading the child modified its parent"

# A parent whose DataWriteGuid does not match the linkage must be refused
# (MS-VHDX 2.6.2.6.3): never read a child over the wrong parent.
"$PY" "$MUT" set-data-write-guid "$p" 11111111-2222-3333-4444-555555555555
rc=0
"$VHDKIT" read "$c" --offset 0 --length 1048576 >/dev/null 2>"$T/mismatch.err" || rc=$?
[ "$rc" -ne 0 ] || fail "vhdkit read the child over a parent with the wrong DataWriteGuid"
[ "$rc" -lt 128 ] || fail "vhdkit crashed (exit $rc) on a parent linkage mismatch: $(cat "$T/mismatch.err")"
info "linkage mismatch refused: $(cat "$T/mismatch.err")"

corpus_intact "$rel"
