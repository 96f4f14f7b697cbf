#!/usr/bin/env bash
# Paging of `vhdkit changes` (DESIGN.md §3.4, §3.5): tiny caps (1, 2, 3),
# windows that start and end inside ranges, ByteLength 0, offset+length =
# size, --all equal to the union of the pages, text and JSON agreeing.
# Every page is checked on its own: processed > 0, count <= cap,
# processed < length only when the cap was reached, and then processed
# ends at the end of the last range or later with no change in between;
# ranges sorted, non-overlapping, coalesced, clipped, sector aligned.
# Work on tmpfs unless told otherwise: these tests are bound by fsync.
[ -n "${TMPDIR:-}" ] || { [ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm; } || true
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/rct-lib.sh"

IMG=$T/d.vhdx
SIZE=$((64 << 20))
K=1024 M=$((1 << 20))
"$VHDKIT" create "$IMG" --size 64M --block-size 1M
"$VHDKIT" rct enable "$IMG"
ID0=$(rct_checkpoint "$IMG")
# Ranges of every shape: one sector, a block, adjacent blocks (coalesced),
# blocks one apart, a range crossing a block boundary, the first and the
# last sector of the disk, a zeroed and a discarded range.
rct_write "$IMG" 0 512
rct_write "$IMG" $((1 * M)) $((64 * K))
rct_write "$IMG" $((2 * M)) $((64 * K))
rct_write "$IMG" $((2 * M + 64 * K)) $((64 * K))
rct_write "$IMG" $((3 * M)) 512
rct_write "$IMG" $((3 * M + 128 * K)) 512
rct_write "$IMG" $((4 * M - 512)) 1024
rct_zero "$IMG" $((10 * M + 4 * K)) $((300 * K))
rct_discard "$IMG" $((20 * M)) $((2 * M))
ID1=$(rct_checkpoint "$IMG")
for i in $(seq 0 39); do
  rct_write "$IMG" $((30 * M + i * 128 * K + (i % 7) * 4 * K)) $(((i % 5 + 1) * 512))
done
rct_write "$IMG" $((SIZE - 512)) 512
check_ids "$IMG" exact

# ByteLength 0, anywhere, is an empty answer.
for off in 0 $((1 * M)) $((SIZE - 512)) "$SIZE"; do
  "$VHDKIT" changes "$IMG" --limit-id "$ID0" --offset "$off" --length 0 --json > "$T/z.json" ||
    fail "ByteLength 0 at $off refused"
  "$PY" -c '
import json,sys
v=json.load(open(sys.argv[1]))
assert v == {"ReturnValue":0,"ProcessedByteLength":0,"ChangedByteOffsets":[],"ChangedByteLengths":[]}, v' "$T/z.json" ||
    fail "ByteLength 0 at $off: $(cat "$T/z.json")"
done

# The pages, driven one call at a time, against the --all answer.
"$PY" - "$VHDKIT" "$IMG" "$SIZE" "$ID0" "$ID1" <<'PY' || fail "paging (see above)"
import json, random, subprocess, sys
vhdkit, img, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
ids = sys.argv[4:]
rnd = random.Random(7)
calls = 0

def run(args):
    global calls
    calls += 1
    p = subprocess.run([vhdkit, "changes", img] + args, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("vhdkit changes %s failed: %s" % (" ".join(args), p.stderr))
    return p.stdout

def ranges_text(out):
    return [tuple(map(int, ln.split())) for ln in out.splitlines() if ln.strip()]

def norm(rs):
    out = []
    for o, l in rs:
        if out and out[-1][0] + out[-1][1] == o:
            out[-1] = (out[-1][0], out[-1][1] + l)
        else:
            out.append((o, l))
    return out

def clip(rs, a, b):
    out = []
    for o, l in rs:
        s, e = max(o, a), min(o + l, b)
        if s < e:
            out.append((s, e - s))
    return out

for lid in ids:
    full = ranges_text(run(["--limit-id", lid, "--all"]))
    one = json.loads(run(["--limit-id", lid, "--json"]))
    if one["ReturnValue"] != 0 or one["ProcessedByteLength"] != size:
        sys.exit("one call with the default cap did not process the whole disk: %s" % one)
    if list(zip(one["ChangedByteOffsets"], one["ChangedByteLengths"])) != full:
        sys.exit("--json and --all disagree for %s" % lid)
    alljson = json.loads(run(["--limit-id", lid, "--all", "--json", "--max-ranges", "1"]))
    if list(zip(alljson["ChangedByteOffsets"], alljson["ChangedByteLengths"])) != full or \
       alljson["ProcessedByteLength"] != size:
        sys.exit("--all --json --max-ranges 1 differs from --all for %s: %s" % (lid, alljson))
    for cap in (1, 2, 3):
        if ranges_text(run(["--limit-id", lid, "--all", "--max-ranges", str(cap)])) != full:
            sys.exit("--all --max-ranges %d differs from --all for %s" % (cap, lid))
    # Windows: the whole disk, ones starting and ending inside ranges, one
    # ending at the very end, random ones; each paged by hand.
    wins = [(0, size), (size - 512, 512), (size - 3 * 512, 3 * 512)]
    for o, l in full[:12]:
        if l >= 1024:
            wins.append((o + 512, l - 1024))                 # inside one range
        wins.append((o + (l // 2 // 512) * 512, size - o - (l // 2 // 512) * 512))
    for i in range(len(full) - 1):
        a, b = full[i], full[i + 1]
        wins.append((a[0] + a[1] - 512, b[0] + 512 - (a[0] + a[1] - 512)))   # ends inside the next
    for _ in range(25):
        s = rnd.randrange(0, size // 512)
        wins.append((s * 512, rnd.randrange(0, size // 512 - s + 1) * 512))
    for a, l in wins:
        want = norm(clip(full, a, a + l))
        for cap in (1, 2, 3, 0):
            off, end, got, pages = a, a + l, [], 0
            while True:
                v = json.loads(run(["--limit-id", lid, "--offset", str(off), "--length", str(end - off),
                                    "--json", "--max-ranges", str(cap)]))
                pages += 1
                rs = list(zip(v["ChangedByteOffsets"], v["ChangedByteLengths"]))
                p = v["ProcessedByteLength"]
                where = "ID %s window [%d,%d) cap %d page at %d: %s" % (lid, a, a + l, cap, off, v)
                if v["ReturnValue"] != 0:
                    sys.exit(where)
                if end - off == 0:
                    if p != 0 or rs:
                        sys.exit("empty window answered with something: " + where)
                    break
                if p <= 0 or p > end - off:
                    sys.exit("processed out of (0, length]: " + where)
                if cap and len(rs) > cap:
                    sys.exit("more ranges than the cap: " + where)
                if p < end - off and len(rs) != (cap or 65536):
                    sys.exit("processed < length although the cap was not reached: " + where)
                prev = None
                for o, ln in rs:
                    if ln <= 0 or o % 512 or ln % 512 or o < off or o + ln > off + p:
                        sys.exit("range %d+%d empty, misaligned or outside the processed part: %s" % (o, ln, where))
                    if prev is not None and o <= prev:
                        sys.exit("ranges not sorted/coalesced: " + where)
                    prev = o + ln
                if rs and p < end - off:
                    last_end = rs[-1][0] + rs[-1][1]
                    if clip(full, last_end, off + p):
                        sys.exit("processed skips a change after the last range: " + where)
                if norm(rs) != norm(clip(full, off, off + p)):
                    sys.exit("page differs from --all clipped to it: %s; expected %s" % (where, clip(full, off, off + p)))
                got += rs
                off += p
                if off >= end:
                    break
                if pages > 10000:
                    sys.exit("no end to paging: " + where)
            if norm(got) != want:
                sys.exit("union of the pages differs: ID %s window [%d,%d) cap %d: %s vs %s" % (lid, a, a + l, cap, norm(got)[:8], want[:8]))
print("# paging: %d calls checked" % calls, file=sys.stderr)
PY
