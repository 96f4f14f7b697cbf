#!/usr/bin/env bash
# Merging a differencing image into its parent: at every crash point the
# child still reads its full contents (VX-8), the parent holds per sector
# its old contents or the child's, and merging again completes the job.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/crash-lib.sh"
IMG=parent.vhdx
make_base () {
  "$VHDKIT" create "$1/parent.vhdx" --size 12M --block-size 1M
  head -c 6M /dev/urandom > "$T/pdata"
  "$VHDKIT" write "$1/parent.vhdx" --offset 1M < "$T/pdata"
  "$VHDKIT" create "$1/child.vhdx" --parent "$1/parent.vhdx" --block-size 1M
  head -c 2100K /dev/urandom > "$T/c1"
  "$VHDKIT" write "$1/child.vhdx" --offset 512K < "$T/c1"
  "$VHDKIT" write "$1/child.vhdx" --zero --offset 5M --length 1M
  "$VHDKIT" read "$1/child.vhdx" > "$T/child.raw"
}
op () { "$VHDKIT" merge "$1/child.vhdx"; }
view () { "$VHDKIT" read "$1/parent.vhdx"; }
extra_verify () {
  "$VHDKIT" read "$T/work/child.vhdx" | cmp -s - "$T/child.raw" || fail "$1: the child no longer reads its contents"
  "$VHDKIT" merge "$T/work/child.vhdx" >/dev/null || fail "$1: merging again failed"
  "$VHDKIT" read "$T/work/parent.vhdx" | cmp -s - "$T/child.raw" || fail "$1: after merging again the parent differs from the child"
}
crash_loop
fault_loop write
fault_loop sync
