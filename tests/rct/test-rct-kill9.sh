#!/usr/bin/env bash
# kill -9 at random moments (INV-1 across a real process death):
#  1. a background writer — a bash loop of `vhdkit write` (data and
#     --zero) and `vhdkit rct checkpoint` calls — killed 14 times;
#  2. `vhdkit convert --existing SRC TRACKED.vhdx` killed 10 times.
# The writer logs each change to the ledger before issuing it and keeps a
# shadow copy of what the disk must hold.  After each kill: every ID still
# answers and covers every change since it (the change in flight counts
# as far as the disk shows it: every sector that differs from the shadow
# must be reported); vhdkit check --repair, then qemu-img check and vhdkit
# check pass; the IDs are checked again after that read-write open.  At
# the end a new reference point is exact.
# Work on tmpfs unless told otherwise: these tests are bound by fsync.
[ -n "${TMPDIR:-}" ] || { [ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm; } || true
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/rct-lib.sh"
need qemu-img setsid

M=$((1 << 20))
SIZE=$((32 * M))
IMG=$T/k.vhdx
"$VHDKIT" create "$IMG" --size 32M --block-size 1M
"$VHDKIT" rct enable "$IMG" --granularity 16K
rct_checkpoint "$IMG" > /dev/null
"$VHDKIT" read "$IMG" > "$T/shadow.raw"
EPOCH=$(rct_status_field "$IMG" Epoch)

# The writer: ledger line "w OFF LEN I" before the op; after the op and
# the shadow update, I goes to $T/done.
cat > "$T/writer.sh" <<'EOF'
set -u
RANDOM=$1
i=0
while :; do
  i=$((i + 1))
  r=$((RANDOM % 50))
  if [ "$r" -lt 1 ]; then
    id=$("$VHDKIT" rct checkpoint "$IMG") && echo "$id $(wc -l < "$LEDGER")" >> "$IDS"
    continue
  fi
  off=$(( (RANDOM * 32768 + RANDOM) % (SIZE / 512) * 512 ))
  len=$(( (RANDOM % 512 + 1) * 512 ))
  [ $((off + len)) -le "$SIZE" ] || len=$((SIZE - off))
  echo "w $off $len $i" >> "$LEDGER"
  if [ "$r" -lt 12 ]; then
    "$VHDKIT" write "$IMG" --offset "$off" --length "$len" --zero || exit 1
    dd if=/dev/zero of="$T/shadow.raw" bs=512 seek=$((off / 512)) count=$((len / 512)) conv=notrunc status=none
  else
    head -c "$len" /dev/urandom > "$T/wdata"
    "$VHDKIT" write "$IMG" --offset "$off" --length "$len" < "$T/wdata" || exit 1
    dd if="$T/wdata" of="$T/shadow.raw" bs=512 seek=$((off / 512)) conv=notrunc status=none
  fi
  echo "$i" > "$T/done"
done
EOF

# After a kill: the ledger's last line stays only if its op finished; what
# the disk shows beyond the shadow goes into the ledger as changes; the
# shadow becomes the disk.
settle () {   # settle WHAT
  local what=$1 last done_i
  last=$(tail -n 1 "$LEDGER")
  done_i=$(cat "$T/done" 2>/dev/null || echo 0)
  if [ -n "$last" ] && [ "$(echo "$last" | cut -d' ' -f4)" != "$done_i" ]; then
    sed -i '$d' "$LEDGER"
  fi
  "$VHDKIT" read "$IMG" > "$T/now.raw" || fail "$what: cannot read the image after kill -9"
  diff_sectors "$T/shadow.raw" "$T/now.raw" 0 > "$T/extra.last"
  sed 's/^/w /' "$T/extra.last" >> "$LEDGER"
  cp "$T/now.raw" "$T/shadow.raw"
}

verify () {   # verify WHAT
  local what=$1
  [ "$(rct_status_field "$IMG" Epoch)" = "$EPOCH" ] ||
    fail "$what: kill -9 started a new epoch: $(rct_status_field "$IMG" Problem)"
  check_ids "$IMG" superset
  "$VHDKIT" check --repair "$IMG" > /dev/null 2>&1 || fail "$what: vhdkit check --repair failed"
  qemu-img check -q -f vhdx "$IMG" || fail "$what: qemu-img check failed after vhdkit check --repair"
  "$VHDKIT" check "$IMG" > "$T/check.out" 2>&1 || fail "$what: vhdkit check: $(cat "$T/check.out")"
  "$VHDKIT" read "$IMG" | cmp -s - "$T/shadow.raw" || fail "$what: check --repair changed the contents"
  check_ids "$IMG" superset
}

# kill -9 the process group PID leads (started with setsid: the writer
# and its vhdkit child), and wait until none of it is left, so that no
# dying vhdkit still holds the image's lock.
kill9_group () {   # sets KILLED=1 if the leader died of the kill
  local i st=0
  kill -9 -- "-$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || st=$?
  KILLED=0; [ "$st" = 137 ] && KILLED=1
  for i in $(seq 1 200); do
    kill -0 -- "-$1" 2>/dev/null || return 0
    sleep 0.05
  done
  fail "process group $1 survived kill -9"
}

export VHDKIT IMG LEDGER IDS SIZE T
pid=
trap 'if [ -n "$pid" ]; then kill -9 -- "-$pid" 2>/dev/null || true; fi; rm -rf "$T"' EXIT
kills=0 partial=0
for round in $(seq 1 14); do
  setsid bash "$T/writer.sh" "$round" < /dev/null > "$T/writer.log" 2>&1 &
  pid=$!
  sleep "0.$((RANDOM % 6 + 2))$((RANDOM % 10))"
  kill -0 -- "-$pid" 2>/dev/null || fail "round $round: the writer (process group $pid) died by itself: $(cat "$T/writer.log")"
  kill9_group "$pid"
  kills=$((kills + 1))
  settle "writer round $round"
  verify "writer round $round (ledger $(wc -l < "$LEDGER") lines, $(wc -l < "$IDS") IDs)"
done

# convert --existing into the tracked image, killed part way: first learn
# how long a whole convert takes here, then kill at a random moment of it.
now_ms () { local t=${EPOCHREALTIME/./}; echo $((10#$t / 1000)); }
head -c "$SIZE" /dev/urandom > "$T/src.raw"
"$VHDKIT" create "$T/probe.vhdx" --size 32M --block-size 1M
t0=$(now_ms)
"$VHDKIT" convert --existing "$T/src.raw" "$T/probe.vhdx" || fail "convert --existing failed"
conv_ms=$(( $(now_ms) - t0 ))
rm -f "$T/probe.vhdx"
info "a whole convert --existing takes ${conv_ms} ms"
for round in $(seq 1 10); do
  head -c "$SIZE" /dev/urandom > "$T/src.raw"
  # Some zero stretches in the source, so that some blocks are skipped.
  dd if=/dev/zero of="$T/src.raw" bs=1M seek=$((round % 7 * 4)) count=3 conv=notrunc status=none
  setsid "$VHDKIT" convert --existing "$T/src.raw" "$IMG" < /dev/null > /dev/null 2>&1 &
  pid=$!
  ms=$((RANDOM % (conv_ms + 1)))
  sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
  kill9_group "$pid"
  kills=$((kills + 1))
  settle "convert round $round"
  partial=$((partial + KILLED))
  verify "convert round $round"
  rct_checkpoint "$IMG" > /dev/null
done

# Clean sessions now: a new reference point is exact.
: > "$LEDGER"; : > "$IDS"
rct_checkpoint "$IMG" > /dev/null
rct_write "$IMG" $((3 * M)) 4096
rct_zero "$IMG" $((30 * M)) $((2 * M))
check_ids "$IMG" exact
info "$kills kills checked ($partial of the converts were cut short)"
