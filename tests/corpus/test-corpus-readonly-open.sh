#!/usr/bin/env bash
# Reading never needs write access: info, check and read succeed on files
# that cannot be opened for writing — including the image whose log must be
# replayed (in memory) and a differencing chain.  As root, permission bits
# do not stop a write-open, so vhdkit runs as the unprivileged user nobody.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/corpus-lib.sh"

as_reader=()
if [ "$(id -u)" -eq 0 ]; then
  need setpriv
  as_reader=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
  chmod 755 "$T"
fi

dirty=$(corpus_copy qemu-iotests/iotest-dirtylog-10G-4M.vhdx.bz2)
parent=$(corpus_copy dfvfs/ntfs-parent.vhdx)
child=$(corpus_copy dfvfs/ntfs-differential.vhdx)
ext2=$(corpus_copy dfvfs/ext2.vhdx)

cases="
$dirty 179cefe8b0587f123393eedf2aa7aa8d25798591178e6bc3950a09762f38f96f
$child 1ef1fb5360247aa7d36a38415bc7bf6e1e52f62af5e6bd1283815e82584c7efc
$ext2 a6c2f0e39afe6c6ab432ca5465349fcefe8dc944398e97b2d957d3f89dbb5d80
"
before=$(sha256sum "$dirty" "$parent" "$child" "$ext2")
# Premise: the reader really cannot write these files.
if "${as_reader[@]}" test -w "$dirty"; then
  fail "test premise: $(basename "$dirty") is writable for the reader"
fi

while read -r -u 3 f hash; do
  [ -n "$f" ] || continue
  name=$(basename "$f")
  for verb in info check; do
    rc=0
    "${as_reader[@]}" "$VHDKIT" "$verb" "$f" >"$T/out" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || fail "'vhdkit $verb $name' on a read-only file exited $rc: $(cat "$T/out")"
  done
  got=$("${as_reader[@]}" "$VHDKIT" read "$f" | sha_stdin) ||
    fail "'vhdkit read $name' on a read-only file failed"
  same "vhdkit read $name (read-only file)" "$got" "$hash"
done 3<<<"$cases"

after=$(sha256sum "$dirty" "$parent" "$child" "$ext2")
[ "$before" = "$after" ] || fail "files changed while being read: $before / $after"
