#!/usr/bin/env bash
# A read-only view (what `vhdkit changes` opens) reads only the tracking
# pages a query needs, and checks each one it reads (docs/FORMAT-rct.md,
# RCT-6, RCT-9).  One damaged page at a time, on a 64 GiB disk whose
# changes lie in leaf pages 0, 2, 400 and 800 (L1 pages 0, 0, 1, 2):
#  - a damaged leaf page the query does not read (its summary names its
#    one changed block) changes nothing: the answer stays exact;
#  - a damaged leaf page the query reads counts as all changed: exactly
#    its 1020 blocks are added, every other range stays exact;
#  - a damaged or zeroed L1 page is rebuilt from its leaves: exact;
#  - an L1 page and a leaf page under it zeroed (a leaf page lost): a
#    query that needs that L1 page answers 32775 with a sentence that
#    names the file, the lost pages and the full backup, and prints no
#    range; a query whose window does not reach it stays exact; status
#    reports the problem.
# Work on tmpfs unless told otherwise: these tests are bound by fsync.
[ -n "${TMPDIR:-}" ] || { [ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm; } || true
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/rct-lib.sh"

K=1024 G=65536
LEAF=$((13 << 20))              # leaf page 0 in IMAGE.rct (FORMAT-rct.md, G = 64 KiB)
L1=65536                        # L1 page 0
PAGE_BYTES=$((1020 * G))        # disk bytes per leaf page
L1_BYTES=$((340 * PAGE_BYTES))  # disk bytes per L1 page
SIZE=$((64 << 30))

mkdir "$T/base"
IMG0=$T/base/d.vhdx
"$VHDKIT" create "$IMG0" --size 64G
"$VHDKIT" rct enable "$IMG0" --granularity 64K
ID=$(rct_checkpoint "$IMG0")
# block B of the disk (64 KiB blocks): 4 KiB written at its start
blocks="0 80 $((2 * 1020 + 10)) $((400 * 1020 + 3)) $((400 * 1020 + 500)) $((800 * 1020 + 7)) $((800 * 1020 + 9))"
for b in $blocks; do rct_write "$IMG0" $((b * G)) $((4 * K)); done
check_ids "$IMG0" exact
exact=$T/exact
for b in $blocks; do echo "$((b * G)) $G"; done > "$exact"

IMG=$T/d.vhdx
reset () { rm -f "$IMG" "$IMG.rct" "$IMG.mrt"; cp "$IMG0" "$IMG0.rct" "$IMG0.mrt" "$T/"; }
flip () {   # flip FILE OFFSET: invert one byte
  "$PY" -c '
import sys
with open(sys.argv[1], "r+b") as h:
    h.seek(int(sys.argv[2])); b = h.read(1)
    h.seek(int(sys.argv[2])); h.write(bytes([b[0] ^ 0xff]))' "$1" "$2"
}
zero () {   # zero FILE OFFSET COUNT
  "$PY" -c '
import sys
with open(sys.argv[1], "r+b") as h:
    h.seek(int(sys.argv[2])); h.write(bytes(int(sys.argv[3])))' "$1" "$2" "$3"
}
# answer WHAT WANT [--offset O --length L]: the ranges must be WANT.
answer () {
  local what=$1 want=$2; shift 2
  "$VHDKIT" changes "$IMG" --limit-id "$ID" --all "$@" > "$T/got" 2> "$T/err" ||
    fail "$what: the query failed: $(cat "$T/err")"
  diff "$want" "$T/got" > "$T/diff" || fail "$what: wrong answer (< expected, > got):
$(head -20 "$T/diff")"
}
# lost WHAT [--offset O --length L]: 32775, the sentence, no range.
lost () {
  local what=$1; shift
  if "$VHDKIT" changes "$IMG" --limit-id "$ID" --all "$@" > "$T/got" 2> "$T/err"; then
    fail "$what: a query that needs a lost page answered: $(head -3 "$T/got")"
  fi
  grep -q '(32775)' "$T/err" || fail "$what: expected 32775, got: $(cat "$T/err")"
  grep -q "$IMG.rct has lost pages of tags" "$T/err" || fail "$what: the sentence does not name the cause: $(cat "$T/err")"
  grep -qi 'full backup' "$T/err" || fail "$what: the sentence does not say a full backup is needed: $(cat "$T/err")"
  [ ! -s "$T/got" ] || fail "$what: ranges printed before the error: $(head -3 "$T/got")"
}

reset
answer "undamaged" "$exact"

# Leaf page 2 holds one changed block: its summary answers, the page is
# not read, so its damage does not show.
reset
flip "$IMG.rct" $((LEAF + 2 * 4096 + 40))
answer "leaf page 2 damaged (not read)" "$exact"

# Leaf page 0 holds two: it is read, found damaged, and counts as all
# changed (blocks 0..1019), nothing else changes.
reset
flip "$IMG.rct" $((LEAF + 4 * 80 + 3))
{ echo "0 $PAGE_BYTES"; grep -v -e '^0 ' -e "^$((80 * G)) " "$exact"; } > "$T/want"
answer "leaf page 0 damaged (read)" "$T/want"
rangecheck superset "$G" "$SIZE" "$T/got" "$LEDGER" || fail "leaf page 0 damaged: a written block is missing"

# L1 pages rebuilt from sound leaves give the exact answer.
reset
flip "$IMG.rct" $((L1 + 2 * 4096 + 12 * 7 + 1))
answer "L1 page 2 damaged" "$exact"
reset
zero "$IMG.rct" "$L1" 4096
answer "L1 page 0 zeroed" "$exact"

# L1 page 1 and leaf page 400 under it zeroed: the leaf page looks never
# written, and only the count of pages with tags shows it was lost.
reset
zero "$IMG.rct" $((L1 + 4096)) 4096
zero "$IMG.rct" $((LEAF + 400 * 4096)) 4096
grep -E "^($((0 * G))|$((80 * G))|$(((2 * 1020 + 10) * G))) " "$exact" > "$T/want"
answer "lost page outside the window" "$T/want" --offset 0 --length "$L1_BYTES"
lost "lost page, whole disk"
lost "lost page, window over L1 page 1" --offset "$L1_BYTES" --length "$L1_BYTES"
"$VHDKIT" rct status "$IMG" > "$T/st" 2> "$T/err" || true
grep -q "lost pages of tags" "$T/st" "$T/err" || fail "status does not report the lost page: $(cat "$T/st" "$T/err")"
