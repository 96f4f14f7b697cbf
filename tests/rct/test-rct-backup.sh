#!/usr/bin/env bash
# The incremental backup cycle of docs/vhdkit.1.md (INCREMENTAL BACKUP),
# followed literally with --kinds: ranges of kind "zero" are zeroed in the
# backup without being read, the others are copied.  After every cycle the
# backup must read exactly as the disk did at its reference point.  And
# every range reported as "zero" must read as zeros (the manual: "it then
# reads as zeros and need not be read"), including ranges where a zero or
# discard covered only part of a tracking block that held data.
# Work on tmpfs unless told otherwise: these tests are bound by fsync.
[ -n "${TMPDIR:-}" ] || { [ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm; } || true
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/rct-lib.sh"

K=1024 M=$((1 << 20))
D=$T/disk.vhdx B=$T/backup.vhdx
"$VHDKIT" create "$D" --size 32M --block-size 1M

# Every "zero" range of `changes --kinds` reads as zeros on the disk.
check_zero_kinds () {   # check_zero_kinds IMG ID WHAT
  local off len kind
  "$VHDKIT" changes "$1" --limit-id "$2" --all --kinds > "$T/kinds" || fail "$3: changes --kinds failed"
  while read -r off len kind; do
    case $kind in
      zero)
        "$VHDKIT" read "$1" --offset "$off" --length "$len" | cmp -s - <(head -c "$len" /dev/zero) ||
          fail "$3: range $off+$len is reported as 'zero' but does not read as zeros (a backup that skips reading it loses data)" ;;
      data) ;;
      *) fail "$3: kind '$kind' of range $off+$len is neither data nor zero" ;;
    esac
  done < "$T/kinds"
  # Text and JSON agree.
  "$VHDKIT" changes "$1" --limit-id "$2" --all --kinds --json > "$T/kinds.json" || fail "$3: --kinds --json failed"
  "$PY" - "$T/kinds" "$T/kinds.json" <<'PY' || fail "$3: --kinds text and JSON disagree"
import json, sys
text = [tuple(l.split()) for l in open(sys.argv[1]) if l.strip()]
v = json.load(open(sys.argv[2]))
js = [(str(o), str(l), k) for o, l, k in zip(v["ChangedByteOffsets"], v["ChangedByteLengths"], v["ChangeKinds"])]
sys.exit(0 if text == js else 1)
PY
}

# One backup cycle, as the manual has it.
backup_cycle () {   # backup_cycle N
  local new off len kind
  new=$("$VHDKIT" rct checkpoint "$D") || fail "cycle $1: checkpoint failed"
  "$VHDKIT" read "$D" > "$T/expected.raw"      # the disk at $new
  check_zero_kinds "$D" "$(cat "$T/last-id")" "cycle $1"
  if ! "$VHDKIT" changes "$D" --limit-id "$(cat "$T/last-id")" --all --kinds \
         > "$T/ranges" 2> "$T/changes.err"; then
    fail "cycle $1: changes failed: $(cat "$T/changes.err")"
  fi
  while read -r off len kind; do
    if [ "$kind" = zero ]; then
      "$VHDKIT" write "$B" --offset "$off" --length "$len" --zero
    else
      "$VHDKIT" read "$D" --offset "$off" --length "$len" |
        "$VHDKIT" write "$B" --offset "$off" --length "$len"
    fi || fail "cycle $1: applying $off+$len ($kind) to the backup failed"
  done < "$T/ranges"
  printf '%s\n' "$new" > "$T/last-id"
  "$VHDKIT" read "$B" | cmp -s - "$T/expected.raw" ||
    fail "cycle $1: the backup differs from the disk at its reference point ($(wc -l < "$T/ranges") ranges applied)"
}

"$VHDKIT" rct enable "$D"
"$VHDKIT" rct checkpoint "$D" > "$T/last-id"
"$VHDKIT" convert "$D" "$B"

# Cycle 1: partial zeros and discards inside blocks that hold data.
head -c $((256 * K)) /dev/urandom | "$VHDKIT" write "$D" --offset 0
"$VHDKIT" write "$D" --offset 0 --length 512 --zero
"$VHDKIT" write "$D" --offset $((64 * K + 4 * K)) --length $((8 * K)) --discard
"$VHDKIT" write "$D" --offset $((128 * K)) --length $((64 * K)) --zero   # a whole block
# An isolated block: data, then its first sector zeroed.
head -c $((64 * K)) /dev/urandom | "$VHDKIT" write "$D" --offset $((4 * M))
"$VHDKIT" write "$D" --offset $((4 * M)) --length 512 --zero
backup_cycle 1
# Cycle 2: zero whole blocks that held data, then data over part of a
# zeroed block.
"$VHDKIT" write "$D" --offset 0 --length $((128 * K)) --zero
head -c 512 /dev/urandom | "$VHDKIT" write "$D" --offset $((64 * K + 512))
"$VHDKIT" write "$D" --offset $((1 * M)) --length $((2 * M)) --discard
backup_cycle 2
# Cycles 3..12: random writes, zeros and discards of every size.
RANDOM=42
for c in $(seq 3 12); do
  for i in $(seq 1 8); do
    off=$(( (RANDOM * 32768 + RANDOM) % (32 * M / 512) * 512 ))
    len=$(( (RANDOM % 384 + 1) * 512 ))
    [ $((off + len)) -le $((32 * M)) ] || len=$((32 * M - off))
    case $((RANDOM % 4)) in
      0) "$VHDKIT" write "$D" --offset "$off" --length "$len" --zero ;;
      1) "$VHDKIT" write "$D" --offset "$off" --length "$len" --discard ;;
      *) head -c "$len" /dev/urandom | "$VHDKIT" write "$D" --offset "$off" ;;
    esac || fail "cycle $c: change $i failed"
  done
  backup_cycle "$c"
done
