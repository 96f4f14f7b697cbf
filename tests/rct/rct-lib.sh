# Helpers for the change-tracking shell tests (DESIGN.md §3, §4).
# Source after tests/lib.sh.
#
# A test keeps a ledger of what it did to one image, so that every RCT ID
# can be checked against the truth:
#   $LEDGER  one line per change, appended BEFORE the change is issued:
#              "w OFF LEN"  a write, zero or discard of [OFF, OFF+LEN)
#              "g OFF LEN"  the disk grew: [OFF, OFF+LEN) is new
#   $IDS     one line per RCT ID: "ID N", N = the ledger lines before it
# rct_write / rct_zero / rct_discard / rct_grow / rct_checkpoint keep them.
#
# check_ids IMG MODE [EXTRA] compares `vhdkit changes --all` of every ID
# with the ledger:
#   exact     after a clean close: exactly the G-blocks touched by writes
#             (INV-1 + INV-3); a grown area may be reported byte-exact or
#             rounded out to G
#   superset  after a crash or damage: every changed byte is reported
#             (INV-1); over-report is allowed
# EXTRA names a file of "OFF LEN" lines that must also be reported for
# every ID (bytes found changed on the disk after a crash, see
# diff_sectors); with MODE superset the ledger's last line can be left
# out with SKIP_LAST=1 (the change in flight at a crash or kill).
need /usr/bin/python3

LEDGER=$T/ledger
IDS=$T/ids
: > "$LEDGER"
: > "$IDS"

rct_status_field () {   # rct_status_field IMG KEY -> the value from status --json
  "$VHDKIT" rct status "$1" --json | "$PY" -c '
import json, sys
v = json.load(sys.stdin)[sys.argv[1]]
print(str(v).lower() if isinstance(v, bool) else v)' "$2"
}

disk_size () {   # disk_size IMG -> virtual size in bytes
  "$VHDKIT" info "$1" --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["MaxInternalSize"])'
}

# rct_write IMG OFF LEN: write LEN random bytes at OFF, ledger first.
rct_write () {
  echo "w $2 $3" >> "$LEDGER"
  head -c "$3" /dev/urandom | "$VHDKIT" write "$1" --offset "$2" --length "$3" ||
    fail "vhdkit write $1 --offset $2 --length $3 failed"
}
rct_zero () {
  echo "w $2 $3" >> "$LEDGER"
  "$VHDKIT" write "$1" --offset "$2" --length "$3" --zero || fail "vhdkit write --zero failed"
}
rct_discard () {
  echo "w $2 $3" >> "$LEDGER"
  "$VHDKIT" write "$1" --offset "$2" --length "$3" --discard || fail "vhdkit write --discard failed"
}
# rct_grow IMG NEWSIZE
rct_grow () {
  local old
  old=$(disk_size "$1")
  echo "g $old $(($2 - old))" >> "$LEDGER"
  "$VHDKIT" resize "$1" --size "$2" || fail "vhdkit resize $1 --size $2 failed"
}
# rct_checkpoint IMG: print the new ID and record it.
rct_checkpoint () {
  local id
  id=$("$VHDKIT" rct checkpoint "$1") || fail "vhdkit rct checkpoint $1 failed"
  case $id in
    rctX:*) ;;
    *) fail "rct checkpoint printed '$id', not an RCT ID" ;;
  esac
  echo "$id $(wc -l < "$LEDGER")" >> "$IDS"
  printf '%s\n' "$id"
}

# rangecheck MODE G SIZE GOT LEDGER-PART [EXTRA]: the checker behind
# check_ids (also usable alone).  GOT holds "OFF LEN" lines as printed by
# `vhdkit changes`; LEDGER-PART the ledger lines after the ID.
rangecheck () {
  printf '%s %s %s\n' "$4" "$5" "$4" > "$T/rangecheck.list"
  rangecheck_list "$1" "$2" "$3" "$T/rangecheck.list" "${6:-}"
}

# rangecheck_list MODE G SIZE LIST [EXTRA]: LIST has "GOT WANT LABEL"
# lines, all checked in one python run.
rangecheck_list () {
  "$PY" - "$@" <<'PY'
import sys
mode, G, size, listf = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
extraf = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] else None

def norm(rs):
    out = []
    for s, e in sorted(r for r in rs if r[1] > r[0]):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out

def first_missing(have, need):          # first byte of NEED outside HAVE
    j = 0
    for s, e in need:
        while s < e:
            while j < len(have) and have[j][1] <= s:
                j += 1
            if j == len(have) or have[j][0] > s:
                return s
            s = have[j][1]
    return None

def show(name, rs):
    return "%s: %s%s" % (name, " ".join("[%d,%d)" % (s, e) for s, e in rs[:12]), " ..." if len(rs) > 12 else "")

extra_lo, extra_hi = [], []
if extraf:
    for ln in open(extraf):
        f = ln.split()
        if f:
            o, l = int(f[0]), int(f[1])
            extra_lo.append((o, o + l))
            extra_hi.append((o // G * G, min(size, -(-(o + l) // G) * G)))

def check(gotf, wantf, label):
    got = []
    for ln in open(gotf):
        f = ln.split()
        if f:
            got.append((int(f[0]), int(f[1])))
    prev = -1
    for o, l in got:
        if l <= 0 or o % 512 or l % 512 or o + l > size:
            return "%s: range %d+%d is empty, misaligned or past the end (%d)" % (label, o, l, size)
        if o <= prev:
            return "%s: range %d+%d is not sorted, overlaps or touches the one before (not coalesced)" % (label, o, l)
        prev = o + l
    got = norm([(o, o + l) for o, l in got])
    lo, hi = list(extra_lo), list(extra_hi)
    for ln in open(wantf):
        f = ln.split()
        if not f:
            continue
        t, o, l = f[0], int(f[1]), int(f[2])
        if l == 0:
            continue
        rs, re_ = o // G * G, min(size, -(-(o + l) // G) * G)
        o2, e2 = min(o, size), min(o + l, size)
        if mode == "exact":
            lo.append((o2, e2) if t == "g" else (rs, re_))
        else:
            lo.append((o2, e2))
        hi.append((rs, re_))
    lo, hi = norm(lo), norm(hi)
    m = first_missing(got, lo)
    if m is not None:
        return "%s: FALSE NEGATIVE: changed byte %d is not reported\n  %s\n  %s" % (label, m, show("reported", got), show("must report", lo))
    if mode == "exact":
        x = first_missing(hi, got)
        if x is not None:
            return "%s: OVER-REPORT after a clean close: byte %d is reported but nothing changed in its %d-byte block\n  %s\n  %s" % (label, x, G, show("reported", got), show("may report", hi))
    return None

bad = 0
for ln in open(listf):
    f = ln.split(None, 2)
    if not f:
        continue
    err = check(f[0], f[1], f[2].strip())
    if err:
        print(err, file=sys.stderr)
        bad += 1
sys.exit(1 if bad else 0)
PY
}

# check_ids IMG MODE [EXTRA]: every recorded ID against the ledger (the
# IDs of $IDS_FILE instead of $IDS if set).
check_ids () {
  local img=$1 mode=$2 extra=${3:-} g size id n total k=0 err
  g=$(rct_status_field "$img" Granularity)
  size=$(disk_size "$img")
  total=$(wc -l < "$LEDGER")
  [ "${SKIP_LAST:-0}" = 1 ] && [ "$mode" = superset ] && total=$((total - 1))
  rm -rf "$T/chk"; mkdir -p "$T/chk"
  : > "$T/chk/list"
  while read -r id n; do
    k=$((k + 1))
    err=$T/chk/$k.err
    if ! "$VHDKIT" changes "$img" --limit-id "$id" --all > "$T/chk/$k.got" 2>"$err"; then
      fail "check_ids ($mode): changes --limit-id $id failed: $(cat "$err")"
    fi
    if [ "$total" -gt "$n" ]; then
      sed -n "$((n + 1)),${total}p" "$LEDGER" > "$T/chk/$k.want"
    else
      : > "$T/chk/$k.want"
    fi
    echo "$T/chk/$k.got $T/chk/$k.want ID $id (after ledger line $n of $total)" >> "$T/chk/list"
  done < "${IDS_FILE:-$IDS}"
  [ "$k" -gt 0 ] || fail "check_ids: no ID recorded"
  rangecheck_list "$mode" "$g" "$size" "$T/chk/list" "$extra" ||
    fail "check_ids ($mode) on $img: wrong answers (see above)"
}

# expect_invalid IMG ID...: every ID gives 32775 and says a full backup is needed.
expect_invalid () {
  local img=$1 id; shift
  for id in "$@"; do
    expect_fail 32775 "$VHDKIT" changes "$img" --limit-id "$id" --all 2>/dev/null
    grep -qi 'full backup' "$T/expect_fail.err" ||
      fail "32775 for $id does not say a full backup is needed: $(cat "$T/expect_fail.err")"
  done
}

# diff_sectors A B BASE: "OFF LEN" (absolute, BASE added) for every run of
# 512-byte sectors in which files A and B differ.
diff_sectors () {
  "$VHDKIT_BUILD/tests/rawcmp" diff "$1" "$2" "$3"
}

# The IDs recorded so far (first field of $IDS).
all_ids () { cut -d' ' -f1 "$IDS"; }
