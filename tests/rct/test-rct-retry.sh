#!/usr/bin/env bash
# A write, flush or reference point fails because the tracking files (or
# the image) return EIO; the same handle retries and goes on writing; then
# the process dies without a flush.  Every range the image now holds new
# data in must be reported since the reference point taken before (INV-1),
# or the ID must answer 32775; never a silent success with a range left
# out.  Faults are injected by strace into real system calls of one
# process (diskops keeps one handle across the whole script), at every
# call of the kind in turn.
[ -n "${TMPDIR:-}" ] || { [ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm; } || true
. "$(dirname "$0")/../lib.sh"
need strace
DISKOPS=$VHDKIT_BUILD/tests/diskops
[ -x "$DISKOPS" ] || fail "$DISKOPS is missing (make all builds it)"

M=$((1 << 20)) K=1024
mkdir "$T/base"
IMG0=$T/base/d.vhdx
"$VHDKIT" create "$IMG0" --size 256M --block-size 1M
head -c $((8 * M)) /dev/urandom | "$VHDKIT" write "$IMG0" --offset 0
"$VHDKIT" rct enable "$IMG0"
ID=$("$VHDKIT" rct checkpoint "$IMG0")
"$VHDKIT" read "$IMG0" > "$T/old.raw"

# Two scripts.  SHORT is the plain retry: a failed write tried again at
# once, then the end without a flush.  LONG goes on after the retry:
# ranges in other tracking leaf pages (64 MiB apart at 64 KiB
# granularity), flushes, a zero, a reference point, more retries.
SHORT=(write 0 64K 0xa1 , write 0 64K 0xa1 , exit)
SHORT_RANGES="0:65536"
LONG=(write 0 64K 0xa1 , write 0 64K 0xa1 , write 70M 4K 0xa2 ,
      flush , write 140M 128K 0xa3 , write 140M 128K 0xa3 , checkpoint ,
      zero 4M 1M , write 200M 8K 0xa4 , flush , write 5M 4K 0xa5 , exit)
LONG_RANGES="0:65536 73400320:4096 146800640:131072 4194304:1048576 209715200:8192 5242880:4096"

# covered GOT OFF LEN: [OFF, OFF+LEN) lies inside the ranges of GOT.
covered () {
  awk -v o="$2" -v l="$3" '{ if ($1 <= o && $1 + $2 >= o + l) f = 1 } END { exit !f }' "$1"
}

IMG=$T/w/d.vhdx
runs=0 refused=0 answered=0
one () {   # one FILE-SUFFIX SYSCALL WHEN
  local file=$IMG$1 sc=$2 when=$3 rc=0 r o l
  rm -rf "$T/w"; cp -a "$T/base" "$T/w"
  strace -f -qq -o /dev/null -P "$file" -e trace="$sc" -e inject="$sc":error=EIO:when="$when" \
    "$DISKOPS" "$IMG" "${SCRIPT[@]}" > "$T/out" 2>&1 || rc=$?
  # Failing to open (tracking is set up at open) is an answer too.
  [ "$rc" = 0 ] || { [ "$rc" = 1 ] && grep -q '^open fail 327[0-9][0-9]: ' "$T/out"; } ||
    fail "diskops failed to run (exit $rc): $(cat "$T/out")"
  runs=$((runs + 1))
  "$VHDKIT" check "$IMG" > "$T/check" 2>&1 || fail "$sc #$when on $file: the image does not check clean: $(cat "$T/check")"
  "$VHDKIT" read "$IMG" > "$T/new.raw"
  rc=0
  "$VHDKIT" changes "$IMG" --limit-id "$ID" --all > "$T/got" 2> "$T/err" || rc=$?
  if [ "$rc" != 0 ]; then
    grep -q '(32775)' "$T/err" || fail "$sc #$when on $file: changes failed with another code: $(cat "$T/err")"
    refused=$((refused + 1))
    return
  fi
  answered=$((answered + 1))
  for r in $RANGES_NOW; do
    o=${r%:*} l=${r#*:}
    if ! cmp -s <(tail -c +$((o + 1)) "$T/old.raw" | head -c "$l") \
                <(tail -c +$((o + 1)) "$T/new.raw" | head -c "$l"); then
      covered "$T/got" "$o" "$l" || {
        cat "$T/out" >&2
        fail "FALSE NEGATIVE: $sc #$when failing on $file: $o+$l changed on the image but is not reported since $ID (got: $(tr '\n' ' ' < "$T/got"))"
      }
    fi
  done
}

# How many calls of each kind the script makes (a run without faults).
count () {   # count FILE-SUFFIX SYSCALL
  rm -rf "$T/w"; cp -a "$T/base" "$T/w"
  strace -f -qq -c -o "$T/count" -P "$IMG$1" -e trace="$2" "$DISKOPS" "$IMG" "${SCRIPT[@]}" > /dev/null 2>&1
  awk -v s="$2" '$NF == s { print $4 }' "$T/count" | head -n 1
}

for script in SHORT LONG; do
  eval 'SCRIPT=("${'$script'[@]}")'
  eval 'RANGES_NOW=$'$script'_RANGES'
  for target in ".mrt pwrite64" ".mrt fdatasync" ".rct pwrite64" ".rct fdatasync" " pwrite64" " fdatasync"; do
    suf=${target% *} sc=${target#* }
    n=$(count "$suf" "$sc")
    [ -n "$n" ] && [ "$n" -gt 0 ] || fail "the $script script makes no $sc on d.vhdx$suf: the test could not fail"
    info "$script: failing each of $n ${sc}s on d.vhdx$suf"
    for w in $(seq 1 "$n"); do one "$suf" "$sc" "$w"; done
  done
done
info "$runs runs: $answered answered with every changed range, $refused refused with 32775"
[ "$answered" -gt 0 ] || fail "no run was answered: the check of the ranges never ran"
