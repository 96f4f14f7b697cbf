#!/usr/bin/env bash
# Foreign writers (INV-4): qemu-io writing a tracked image between vhdkit
# sessions.  Every older ID must then fail with 32775 and a sentence saying
# a full backup is needed (never answer), the next read-write open starts a
# new epoch (status shows another Epoch), and new reference points work
# exactly.  A foreign reader (qemu-io read, qemu-img info/check) must not
# invalidate anything, nor must vhdkit's own sessions, however many.
# Work on tmpfs unless told otherwise: these tests are bound by fsync.
[ -n "${TMPDIR:-}" ] || { [ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm; } || true
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/rct-lib.sh"
need qemu-io qemu-img

M=$((1 << 20))

foreign_round () {   # foreign_round IMG FMT
  local img=$1 fmt=$2 e1 e2 id1 id2 id3 i
  : > "$LEDGER"; : > "$IDS"
  "$VHDKIT" rct enable "$img"
  id1=$(rct_checkpoint "$img")
  rct_write "$img" 0 4096
  id2=$(rct_checkpoint "$img")
  # Several vhdkit sessions: still the same epoch, IDs valid.
  for i in 1 2 3 4 5; do rct_write "$img" $((i * M)) 512; done
  e1=$(rct_status_field "$img" Epoch)
  check_ids "$img" exact
  # Foreign readers change nothing.
  qemu-io -f "$fmt" -c 'read 0 4k' "$img" >/dev/null || fail "qemu-io read failed"
  qemu-io -r -f "$fmt" -c 'read 1M 4k' "$img" >/dev/null || fail "qemu-io -r read failed"
  qemu-img info -f "$fmt" "$img" >/dev/null
  [ "$fmt" = raw ] || qemu-img check -f "$fmt" "$img" >/dev/null || fail "qemu-img check failed"
  check_ids "$img" exact
  [ "$(rct_status_field "$img" Epoch)" = "$e1" ] || fail "$fmt: a foreign reader started a new epoch"

  # A foreign write.
  qemu-io -f "$fmt" -c 'write -P 0xab 7M 64k' "$img" >/dev/null || fail "qemu-io write failed"
  # Read-only views already refuse every old ID.
  expect_invalid "$img" "$id1" "$id2"
  [ -n "$(rct_status_field "$img" Problem)" ] ||
    [ "$(rct_status_field "$img" Epoch)" != "$e1" ] ||
    fail "$fmt: status shows neither a problem nor a new epoch after a foreign write"
  # A vhdkit writer opens it: a new epoch begins.
  : > "$LEDGER"; : > "$IDS"
  rct_write "$img" $((9 * M)) 512
  e2=$(rct_status_field "$img" Epoch)
  [ "$e2" != "$e1" ] || fail "$fmt: no new epoch after a foreign write and a vhdkit write ($e1)"
  [ -z "$(rct_status_field "$img" Problem)" ] || fail "$fmt: status still has a problem: $(rct_status_field "$img" Problem)"
  [ "$(rct_status_field "$img" Enabled)" = true ] || fail "$fmt: tracking is off after the new epoch"
  expect_invalid "$img" "$id1" "$id2"
  grep -qi "full backup" "$T/expect_fail.err" || fail "no full-backup sentence"
  # New reference points work, exactly.
  : > "$LEDGER"; : > "$IDS"
  id3=$(rct_checkpoint "$img")
  case $id3 in "rctX:${e2//-/:}:"*) ;; *) fail "$fmt: new ID $id3 is not of the new epoch $e2" ;; esac
  rct_write "$img" $((3 * M + 512)) 1024
  rct_zero "$img" $((12 * M)) $((2 * M))
  rct_checkpoint "$img" >/dev/null
  rct_write "$img" $((13 * M)) 512
  check_ids "$img" exact
  expect_invalid "$img" "$id1" "$id2"
  # A second foreign write right after a checkpoint, with no vhdkit write
  # in between, is caught as well.
  id1=$(rct_checkpoint "$img")
  qemu-io -f "$fmt" -c 'write -P 0xcd 0 512' "$img" >/dev/null || fail "qemu-io write failed"
  expect_invalid "$img" "$id1" "$id3"
  rct_checkpoint "$img" >/dev/null
  expect_invalid "$img" "$id1" "$id3"
  [ "$(rct_status_field "$img" Epoch)" != "$e2" ] || fail "$fmt: second foreign write: no new epoch"
  "$VHDKIT" check "$img" >/dev/null 2>&1 || [ "$fmt" = raw ] || fail "$fmt: vhdkit check fails"
}

"$VHDKIT" create "$T/d.vhdx" --size 32M --block-size 1M
foreign_round "$T/d.vhdx" vhdx
qemu-img check -f vhdx "$T/d.vhdx" >/dev/null || fail "qemu-img check fails at the end"

"$VHDKIT" create "$T/d.img" --size 32M
foreign_round "$T/d.img" raw

# A foreign zero write (qemu-io write -z) is a foreign write too.
"$VHDKIT" create "$T/z.vhdx" --size 32M
"$VHDKIT" rct enable "$T/z.vhdx"
: > "$LEDGER"; : > "$IDS"
rct_write "$T/z.vhdx" $((2 * M)) $((1 * M))
id=$(rct_checkpoint "$T/z.vhdx")
qemu-io -f vhdx -c 'write -z 2M 1M' "$T/z.vhdx" >/dev/null || fail "qemu-io write -z failed"
expect_invalid "$T/z.vhdx" "$id"
