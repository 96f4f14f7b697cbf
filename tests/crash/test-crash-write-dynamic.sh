#!/usr/bin/env bash
# Writes into a dynamic VHDX (new blocks, allocated blocks, a block
# boundary): crash at every sync, fail every write and every sync.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/crash-lib.sh"
IMG=d.vhdx
make_base () {
  "$VHDKIT" create "$1/$IMG" --size 24M --block-size 1M
  head -c 1536K /dev/urandom > "$T/pre"
  "$VHDKIT" write "$1/$IMG" --offset 2M < "$T/pre"
  head -c 3M /dev/urandom > "$T/data"
}
op () { "$VHDKIT" write "$1/$IMG" --offset 2560K < "$T/data"; }
crash_loop
fault_loop write
fault_loop sync
