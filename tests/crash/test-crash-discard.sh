#!/usr/bin/env bash
# Zeroing and discarding whole and partial blocks of a dynamic VHDX.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/crash-lib.sh"
IMG=d.vhdx
make_base () {
  "$VHDKIT" create "$1/$IMG" --size 16M --block-size 1M
  head -c 8M /dev/urandom > "$T/pre"
  "$VHDKIT" write "$1/$IMG" --offset 1M < "$T/pre"
}
op () { "$VHDKIT" write "$1/$IMG" --discard --offset 1536K --length 3M; }
crash_loop
fault_loop write
fault_loop sync
