#!/usr/bin/env bash
# Growing a dynamic VHDX past the capacity of its BAT region (the BAT
# moves) and a plain grow: crash at every sync, fail every write/sync.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/crash-lib.sh"
IMG=d.vhdx
make_base () {
  "$VHDKIT" create "$1/$IMG" --size 63M --block-size 1M
  head -c 2M /dev/urandom > "$T/pre"
  "$VHDKIT" write "$1/$IMG" --offset 61M < "$T/pre"
}
# 1 MiB blocks, 512-byte sectors: one 1 MiB BAT holds 131072 entries,
# about 127 GiB: growing to 200G relocates it.
op () { "$VHDKIT" resize "$1/$IMG" --size "$NEWSIZE"; }
# Compare the first 63 MiB (the old size): the rest of a grown disk must read as zeros,
# checked separately below.
# The first sector of the view is the virtual size (old or new).
view () {
  local sz
  sz=$("$VHDKIT" info --json "$1/$IMG" | sed -n 's/.*"MaxInternalSize": *\([0-9]*\).*/\1/p')
  printf '%-511s\n' "$sz"
  "$VHDKIT" read "$1/$IMG" --offset 0 --length 63M
}
NEWSIZE=64M
crash_loop
fault_loop sync
NEWSIZE=200G
QEMU_CONTENT=0
crash_loop
fault_loop write
reset_work
op "$T/work"
"$VHDKIT" read "$T/work/$IMG" --offset $((200 * 1024 * 1024 * 1024 - 1048576)) --length 1M | cmp -s - <(head -c 1M /dev/zero) ||
  fail "the grown tail does not read as zeros"
qemu-img info --output=json "$T/work/$IMG" | grep -q '"virtual-size": 214748364800' || fail "qemu-img does not see the new size"
