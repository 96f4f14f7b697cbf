#!/usr/bin/env bash
# The comparison helper of the crash and tracking tests (tests/helpers/
# rawcmp.c) finds what it must find: each check on a case that holds and
# on one that does not, checked against an independent python reading.
. "$(dirname "$0")/../lib.sh"
R=$VHDKIT_BUILD/tests/rawcmp
[ -x "$R" ] || fail "$R is missing (make all builds it)"
need /usr/bin/python3

M=$((1 << 20))
head -c $((3 * M)) /dev/urandom > "$T/old"
cp "$T/old" "$T/new"
# new: sectors changed at 1 MiB + 512, a run across the chunk boundary
# at 2 MiB, and the last sector (3 MiB - 512).
printf 'x%.0s' $(seq 512) | dd of="$T/new" bs=512 seek=$((2 * 1024 + 1)) conv=notrunc status=none
head -c 4096 /dev/urandom | dd of="$T/new" bs=512 seek=$((4 * 1024 - 4)) conv=notrunc status=none
head -c 512 /dev/urandom | dd of="$T/new" bs=512 seek=$((6 * 1024 - 1)) conv=notrunc status=none

# diff, against python's sector by sector reading.
"$R" diff "$T/old" "$T/new" 1000 > "$T/d.out"
/usr/bin/python3 - "$T/old" "$T/new" > "$T/d.want" <<'PY'
import sys
a, b = (open(p, 'rb').read() for p in sys.argv[1:3])
run = None
for i in range(0, max(len(a), len(b)), 512):
    d = a[i:i+512] != b[i:i+512]
    if d and run is None: run = i
    if not d and run is not None: print(1000 + run, i - run); run = None
if run is not None: print(1000 + run, max(len(a), len(b)) - run)
PY
cmp -s "$T/d.out" "$T/d.want" || fail "diff: $(cat "$T/d.out") instead of $(cat "$T/d.want")"
[ "$(wc -l < "$T/d.out")" = 3 ] || fail "diff: not three runs: $(cat "$T/d.out")"
# A file one sector longer: that sector differs, even if it is zeros.
cp "$T/old" "$T/long"; head -c 512 /dev/zero >> "$T/long"
[ "$("$R" diff "$T/old" "$T/long" 0)" = "$((3 * M)) 512" ] || fail "diff: the extra sector of a longer file"
[ -z "$("$R" diff "$T/old" "$T/old" 0)" ] || fail "diff: identical files differ"

# covers: the exact runs, then ranges split so that they only touch.
"$R" diff "$T/old" "$T/new" 0 > "$T/r"
"$R" covers "$T/old" "$T/new" "$T/r" || fail "covers: the exact runs do not cover"
printf '%s\n' "$((3 * M - 512)) 512" "$((2 * M - 2048)) 2048" "$M 1024" "$((2 * M)) 2048" > "$T/r2"
"$R" covers "$T/old" "$T/new" "$T/r2" || fail "covers: touching ranges in any order"
grep -v "^$M " "$T/r2" > "$T/r3"
if "$R" covers "$T/old" "$T/new" "$T/r3" 2> "$T/c.err"; then fail "covers: a missing range went unnoticed"; fi
grep -q "changed sector at $((M + 512)) is not reported" "$T/c.err" || fail "covers: does not name the sector: $(cat "$T/c.err")"
printf '%s\n' "$M 1024" "$((2 * M - 2048)) 2047" "$((2 * M)) 2048" "$((3 * M - 512)) 512" > "$T/r4"
if "$R" covers "$T/old" "$T/new" "$T/r4" 2>/dev/null; then fail "covers: a range one byte short went unnoticed"; fi

# oneof: sectors of either; a sector of neither; a wrong size.
cp "$T/old" "$T/got"
dd if="$T/new" of="$T/got" bs=512 skip=$((2 * 1024 + 1)) seek=$((2 * 1024 + 1)) count=1 conv=notrunc status=none
"$R" oneof "$T/old" "$T/new" "$T/got" || fail "oneof: a mix of old and new sectors"
"$R" oneof "$T/old" "$T/new" "$T/new" || fail "oneof: the new content"
printf 'y' | dd of="$T/got" bs=1 seek=$((5 * M / 2)) conv=notrunc status=none
if "$R" oneof "$T/old" "$T/new" "$T/got" 2> "$T/o.err"; then fail "oneof: a sector of neither went unnoticed"; fi
grep -q "sector at $((5 * M / 2)) is neither" "$T/o.err" || fail "oneof: does not name the sector: $(cat "$T/o.err")"
if "$R" oneof "$T/old" "$T/new" "$T/long" 2>/dev/null; then fail "oneof: a file of another size"; fi
exit 0
