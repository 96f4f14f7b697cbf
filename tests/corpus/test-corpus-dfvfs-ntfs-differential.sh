#!/usr/bin/env bash
# Windows 10 diskpart: differencing VHDX with PARTIALLY_PRESENT blocks and a
# sector bitmap, read as a chain over ntfs-parent.vhdx.  The parent locator
# names the parent by the Windows relative path ".\ntfs-parent.vhdx" (and an
# absolute C:\ path that does not exist here); 13 stale log entries with a
# zero LogGuid must NOT be replayed.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/corpus-lib.sh"

child_rel=dfvfs/ntfs-differential.vhdx
parent_rel=dfvfs/ntfs-parent.vhdx
# Both copies land in $T, side by side, so ".\ntfs-parent.vhdx" resolves.
p=$(corpus_copy "$parent_rel")
c=$(corpus_copy "$child_rel")
[ "$(dirname "$p")" = "$(dirname "$c")" ] || fail "parent and child copies are not side by side"
psha=$(file_sha "$p")

check_vhdx "$c" 1ef1fb5360247aa7d36a38415bc7bf6e1e52f62af5e6bd1283815e82584c7efc \
  4 4194304 2097152 512 4096 \
  VirtualDiskId=d62318cc-56ce-42e2-898d-16e1d1c9843e \
  DataWriteGuid=305abbc8-cef4-45ea-aee8-42ee5c891b06 \
  ParentLinkage=7584f8fb-36d3-4091-afb5-b1afe587bfa8 \
  ChainDepth=2 ParentPath="*/ntfs-parent.vhdx"

[ "$(file_sha "$p")" = "$psha" ] || fail "reading the child modified the parent ntfs-parent.vhdx"

# Without its parent the chain cannot be read: File not found (32779).
mkdir "$T/alone"
cp "$c" "$T/alone/"
expect_fail 32779 "$VHDKIT" read "$T/alone/ntfs-differential.vhdx"
grep -q 'ntfs-parent' "$T/expect_fail.err" || fail "the missing-parent error does not name ntfs-parent.vhdx"

corpus_intact "$child_rel"
corpus_intact "$parent_rel"
