#!/usr/bin/env bash
# Partial-block writes into a differencing VHDX (sector bitmaps, new
# sector-bitmap block): crash at every sync, fail every write and sync.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/crash-lib.sh"
IMG=child.vhdx
NO_QEMU=1
make_base () {
  "$VHDKIT" create "$1/parent.vhdx" --size 16M --block-size 1M
  head -c 16M /dev/urandom > "$T/pdata"
  "$VHDKIT" write "$1/parent.vhdx" --offset 0 < "$T/pdata"
  "$VHDKIT" create "$1/$IMG" --parent "$1/parent.vhdx" --block-size 1M
  head -c 7K /dev/urandom > "$T/pre"
  "$VHDKIT" write "$1/$IMG" --offset 1M < "$T/pre"
  head -c 2500K /dev/urandom | head -c 2560000 > "$T/data"
}
op () { "$VHDKIT" write "$1/$IMG" --offset 1536000 < "$T/data"; }
crash_loop
fault_loop write
fault_loop sync
