#!/usr/bin/env bash
# INV-6: tracking survives moves.  An image moved (renamed, into another
# directory, under another name) together with its IMAGE.rct and
# IMAGE.mrt keeps every ID valid and exact, for VHDX and for raw images.
# A copy (cp -a) of a VHDX with its files is the same disk and keeps
# working too.
# Work on tmpfs unless told otherwise: these tests are bound by fsync.
[ -n "${TMPDIR:-}" ] || { [ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm; } || true
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/rct-lib.sh"

M=$((1 << 20))
mkdir "$T/a" "$T/b" "$T/c"

move_round () {   # move_round EXT
  local ext=$1 img new f
  img=$T/a/d.$ext new=$T/b/moved.$ext
  : > "$LEDGER"; : > "$IDS"
  "$VHDKIT" create "$img" --size 32M
  "$VHDKIT" rct enable "$img"
  rct_checkpoint "$img" >/dev/null
  rct_write "$img" $((1 * M)) 4096
  rct_checkpoint "$img" >/dev/null
  rct_write "$img" $((9 * M)) 512
  check_ids "$img" exact
  for f in "" .rct .mrt; do mv "$img$f" "$new$f"; done
  check_ids "$new" exact
  rct_write "$new" $((2 * M)) 512
  rct_checkpoint "$new" >/dev/null
  rct_write "$new" $((3 * M)) 512
  check_ids "$new" exact
}

move_round vhdx
# A copy of a VHDX and its files, elsewhere.
for f in "" .rct .mrt; do cp -a "$T/b/moved.vhdx$f" "$T/c/copy.vhdx$f"; done
check_ids "$T/c/copy.vhdx" exact
move_round img
