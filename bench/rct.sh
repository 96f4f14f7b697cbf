#!/usr/bin/env bash
# bench/rct.sh: resilient change tracking benchmarks.  Every figure is a
# ratio between measurements of the same run, or a count (this machine is
# noisy and shared; absolute times mean little), and comes with the
# machine's load average (/proc/loadavg) when it was measured.  Results:
# stdout and bench/results/rct-<date>.txt (the summary block at the end).
#
#  1. write-path overhead: random 4 KiB writes through libvhdkit on a
#     4 GiB fixed VHDX with tracking off and on, alternating BENCH_RUNS
#     times (bench/randio.c), in a tight loop (on a tmpfs) and with a
#     flush every 1000 writes (on the disk); median write IOPS on/off
#  2. query speed: 100000 scattered changed 4 KiB blocks on a 64 TiB
#     dynamic VHDX (64 KiB granularity; bench/rctgen.c writes them), time
#     of `vhdkit changes --all` vs the anchor: the same blocks written with
#     qemu-io into a 64 TiB qcow2 with a persistent 64 KiB dirty bitmap,
#     read with `nbdinfo --map=qemu:dirty-bitmap:b0` from qemu-nbd
#     (hyperfine medians, three rounds); the same for the last 10000 of
#     them (a second reference point / bitmap).  Both answers must be the
#     same ranges.  Then the 64 TiB / 1 TiB time ratio for the same number
#     of changes, and a control with the same offsets (all in the first
#     TiB) on both sizes
#  3. precision: bytes reported / bytes written for 20000 random 4 KiB
#     writes on a 64 GiB disk, at 4 KiB and 64 KiB granularity (and no
#     written block may be missing from the answer)
#  4. tracking metadata: allocated KiB of IMAGE.rct + IMAGE.mrt per TiB
#     of virtual size after 1000 rounds of (10 random 4 KiB writes + a
#     reference point) on a 1 TiB disk; every one of the 1000 IDs is then
#     queried and its answer compared with the writes that followed it
#
# Environment: BENCH_DIR (scratch, default /var/tmp/vhdkit-bench-rct;
# needs ~15 GiB, removed at the end), BENCH_RUNS (alternations and
# hyperfine runs, default 5), BENCH_REPS (randio runs per side of an
# alternation, default 3), BENCH_OPS (random writes per tight-loop run,
# default 250000: ~1 GiB dirtied, below the kernel's background
# write-back threshold on this 24 GiB machine), BENCH_FLUSH_OPS
# (writes per flushing run, default 50000), RANDIO_DIR (a tmpfs for
# the tight loop, default /dev/shm; needs 4 GiB), BENCH_CHANGES (scattered
# changes for 2, default 100000).  Takes 6 to 10 minutes on a quiet
# machine.

# The whole script is one block, so bash has read all of it before it
# runs any of it: an edit of this file during a run cannot change the run.
{
set -euo pipefail
shopt -s inherit_errexit          # a failure inside $(...) stops the run too
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${BENCH_DIR:-/var/tmp/vhdkit-bench-rct}
runs=${BENCH_RUNS:-5}
reps=${BENCH_REPS:-3}
ops=${BENCH_OPS:-250000}
flush_ops=${BENCH_FLUSH_OPS:-50000}
nchg=${BENCH_CHANGES:-100000}
for c in qemu-img qemu-io qemu-nbd nbdinfo hyperfine python3 cc; do
  command -v $c >/dev/null || { echo "bench: $c missing (apt-get install qemu-utils libnbd-bin hyperfine)"; exit 1; }
done
make -C "$top" -s -q build/vhdkit build/libvhdkit.a 2>/dev/null || { echo "bench: build/ is missing or older than the sources: run make first"; exit 1; }
mkdir -p "$dir" "$top/bench/results"
exec 9> "$dir/.lock"
flock -n 9 || { echo "bench: another bench/rct.sh is using $dir (set BENCH_DIR)"; exit 1; }
# One version for the whole run, even if the tree is rebuilt meanwhile.
cp "$top/build/vhdkit" "$dir/vhdkit"
cp "$top/build/libvhdkit.a" "$dir/libvhdkit.a"
V=$dir/vhdkit
rev=$(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)
out=$top/bench/results/rct-$(date +%Y%m%d-%H%M%S).txt
sum=$dir/summary.txt
: > "$sum"
for p in randio rctgen; do
  cc -std=c11 -O2 -Wall -Wextra -D_GNU_SOURCE -I"$top/include" "$top/bench/$p.c" "$dir/libvhdkit.a" -pthread -o "$dir/$p"
done
R=$dir/randio G=$dir/rctgen

nbd_pid=
imgs="write q64 q1 q64c prec meta"
cleanup () {
  if [ -n "$nbd_pid" ]; then kill "$nbd_pid" 2>/dev/null || true; wait "$nbd_pid" 2>/dev/null || true; fi
  for i in $imgs; do rm -f "$dir/$i.vhdx" "$dir/$i.vhdx.rct" "$dir/$i.vhdx.mrt"; done
  rm -f "$dir/q64.qcow2" "$dir/nbd.sock" "$dir"/meta-*.txt "$dir/libvhdkit.a"
  [ -z "${shm:-}" ] || rm -rf "$shm"
}
trap cleanup EXIT

say () { echo "$*" | tee -a "$out"; }       # details; summary lines go to $sum
# The load averages over 1, 5 and 15 minutes: other work on this machine
# changes every figure, so each is given with the load it was taken at.
load () { cut -d' ' -f1-3 /proc/loadavg; }
hdr="# vhdkit rct bench $(date -u +%FT%TZ) on $(nproc) cores, load $(load) at the start; $("$V" --version) ($rev); $(qemu-img --version | sed -n 1p); $(nbdinfo --version | sed -n 1p)"
say "$hdr"
# "on"/"off", then "changed" if written since the newest reference point
tracking () { "$V" rct status "$1" --json | python3 -c "import json,sys; j=json.load(sys.stdin); print('on' if j['Enabled'] else 'off', *(['changed'] if j['NewerChanges'] else []))"; }

# ---- 1. write-path overhead --------------------------------------------
# The tight loop runs on a tmpfs (RANDIO_DIR, default /dev/shm, as in
# bench/run.sh): on the disk, page-cache write-back of everything else
# this shared machine does throttles every write (seen: 20k instead of
# 700k IOPS, both sides alike), which hides the per-write cost being
# measured.  The flushing loop is about synchronous writes, so it runs on
# the disk (BENCH_DIR), where they cost what they cost.
say "== 1. write path: 4 GiB fixed VHDX, random 4 KiB writes, tracking off vs on, $runs alternations of $reps runs each"
cleanup
load1=$(load)
shm=${RANDIO_DIR:-/dev/shm}/vhdkit-bench-rct.$$
mkdir -p "$shm"
wt=$shm/write.vhdx w=$dir/write.vhdx
: > "$dir/write.txt"
# alternate KIND IMG OPS [FLUSH_EVERY]: BENCH_RUNS alternations, each
# side BENCH_REPS runs with the same seeds, the order swapped every time
alternate () {
  local i k st order
  "$V" create "$2" --size 4G --type fixed --no-progress >/dev/null
  # Write every byte once: a first write into a fallocated (unwritten)
  # extent costs more than a later one, and would favour whichever side
  # of an alternation runs second with the same offsets.
  head -c 4G /dev/zero | "$V" write "$2" --offset 0
  "$R" vhdkit "$2" "$3" 0 ${4:-} >/dev/null          # warm-up, untimed
  for ((i = 1; i <= runs; i++)); do
    if ((i % 2)); then order="off on"; else order="on off"; fi
    for st in $order; do
      [ "$st" = on ] && "$V" rct enable "$2" --granularity 64K >/dev/null
      tracking "$2" | grep -qx "$st" || { say "tracking should be $st"; exit 1; }
      for ((k = 1; k <= reps; k++)); do
        echo "$i $st $1 $("$R" vhdkit "$2" "$3" "$i$k" ${4:-})" >> "$dir/write.txt"
      done
      if [ "$st" = on ]; then
        tracking "$2" | grep -qx "on changed" || { say "tracking recorded nothing"; exit 1; }
        "$V" rct disable "$2" >/dev/null
      fi
    done
  done
  rm -f "$2" "$2.rct" "$2.mrt"
}
alternate tight "$wt" "$ops"
alternate flush "$w" "$flush_ops" 1000
python3 - "$dir/write.txt" "$sum" "$ops" "$flush_ops" "$load1" "$(load)" <<'PY' | tee -a "$out"
import sys, statistics as st, collections
# (kind, alternation) -> state -> [(read, write)] of its runs
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    i, state, kind, r, w = line.split()
    rows[(kind, int(i))][state].append((float(r.split("=")[1]), float(w.split("=")[1])))
with open(sys.argv[2], "a") as s:
    for kind, label in (("tight", "tight loop, %s writes/run, tmpfs" % sys.argv[3]),
                        ("flush", "flush every 1000 writes, %s writes/run, disk" % sys.argv[4])):
        pairs = [rows[k] for k in sorted(rows) if k[0] == kind]
        med = lambda runs, j: st.median(x[j] for x in runs)
        wr = [med(p["on"], 1) / med(p["off"], 1) for p in pairs]
        rr = [med(p["on"], 0) / med(p["off"], 0) for p in pairs]
        print("%-40s write on/off per alternation (median of each side's runs): %s" % (label, " ".join("%.3f" % x for x in wr)))
        line = ("1 write IOPS on/off, %-44s median %.3f (%d alternations; read on/off %.3f)%s"
                % (label + ":", st.median(wr), len(wr), st.median(rr), "  target >= 0.97" if kind == "tight" else ""))
        print(line)
        s.write(line + "\n")
    line = "  (load %s before these alternations, %s after)" % (sys.argv[5], sys.argv[6])
    print(line)
    s.write(line + "\n")
PY
rm -rf "$shm"

# ---- 2. query speed ----------------------------------------------------
# The changes are written in two parts, with a reference point (vhdkit)
# or a new bitmap (qcow2) between them: the last tenth gives a second
# data point at nchg/10 changes on the same images.
small=$((nchg / 10))
say "== 2. query: $nchg (and the last $small of them) scattered changed 4 KiB blocks, 64 KiB granularity"
"$G" offsets $((64 << 40)) "$nchg" 42 > "$dir/off64.txt"
"$G" offsets $((1 << 40)) "$nchg" 42 > "$dir/off1.txt"
head -n $((nchg - small)) "$dir/off64.txt" > "$dir/off64a.txt"
tail -n "$small" "$dir/off64.txt" > "$dir/off64b.txt"
# mkimg IMG SIZE OFFSETS [MORE]: tracked dynamic VHDX, a reference point,
# the changes (flushing every 10000 writes as a guest would), and with
# MORE a second reference point and those changes; prints the ID(s).
# (One retry: this shared machine has answered fdatasync with a transient
# ENOSPC while writing a 64 TiB image, with 70 GB free.)
mkimg () {
  local id id2= try
  for try in 1 2; do
    rm -f "$1" "$1.rct" "$1.mrt"
    "$V" create "$1" --size "$2" >/dev/null
    "$V" rct enable "$1" --granularity 64K >/dev/null
    id=$("$V" rct checkpoint "$1")
    if "$G" write "$1" "$3" 10000 >/dev/null; then
      if [ -z "${4:-}" ]; then echo "$id"; return 0; fi
      id2=$("$V" rct checkpoint "$1")
      if "$G" write "$1" "$4" 10000 >/dev/null; then echo "$id $id2"; return 0; fi
    fi
    echo "bench: writing $1 failed (try $try)" >&2
  done
  return 1
}
read -r id64 id64b < <(mkimg "$dir/q64.vhdx" 64T "$dir/off64a.txt" "$dir/off64b.txt")
[ -n "$id64b" ] || { say "building the 64 TiB image failed"; exit 1; }
id1=$(mkimg "$dir/q1.vhdx" 1T "$dir/off1.txt")
idc=$(mkimg "$dir/q64c.vhdx" 64T "$dir/off1.txt")   # control: same offsets as the 1 TiB disk
qc=$dir/q64.qcow2
qemu-img create -q -f qcow2 "$qc" 64T
qemu-img bitmap --add -g 65536 "$qc" b0
for part in a b; do
  [ $part = b ] && qemu-img bitmap --add -g 65536 "$qc" b1
  awk '{ print "write -q " $1 " 4k" }' "$dir/off64$part.txt" | qemu-io -f qcow2 -t unsafe "$qc" > "$dir/qemu-io.log" 2>&1
  if grep -Ei 'error|fail' "$dir/qemu-io.log" | head -3 | grep .; then say "qemu-io failed (log: $dir/qemu-io.log)"; exit 1; fi
done
sync "$qc"                                     # no write-back during the timings
sock=$dir/nbd.sock
rm -f "$sock"
qemu-nbd -r -t -B b0 -B b1 -k "$sock" -f qcow2 "$qc" > "$dir/qemu-nbd.log" 2>&1 &
nbd_pid=$!
for ((t = 0; t < 600; t++)); do
  [ -S "$sock" ] && break
  kill -0 "$nbd_pid" 2>/dev/null || { say "qemu-nbd exited: $(cat "$dir/qemu-nbd.log")"; exit 1; }
  sleep 0.1
done
[ -S "$sock" ] || { say "qemu-nbd: no socket after 60 s"; exit 1; }
uri="nbd+unix:///?socket=$sock"
nbdinfo --map=qemu:dirty-bitmap:b0 "$uri" > "$dir/map64.txt"
nbdinfo --map=qemu:dirty-bitmap:b1 "$uri" > "$dir/map64b.txt"
"$V" changes "$dir/q64.vhdx" --limit-id "$id64" --all > "$dir/ch64.txt"
"$V" changes "$dir/q64.vhdx" --limit-id "$id64b" --all > "$dir/ch64b.txt"
"$V" changes "$dir/q1.vhdx" --limit-id "$id1" --all > "$dir/ch1.txt"
"$V" changes "$dir/q64c.vhdx" --limit-id "$idc" --all > "$dir/chc.txt"
# Three rounds of hyperfine: nbdinfo and qemu-nbd are two processes and
# suffer more from a busy machine than vhdkit does, so one round can be
# off; each figure is the median of the three rounds' ratios.
for round in 1 2 3; do
  load > "$dir/load$round.txt"
  hyperfine -N -w 1 -r "$runs" --export-json "$dir/q$round.json" \
    "$V changes $dir/q64.vhdx --limit-id $id64 --all" \
    "nbdinfo --map=qemu:dirty-bitmap:b0 '$uri'" \
    "$V changes $dir/q1.vhdx --limit-id $id1 --all" \
    "$V changes $dir/q64c.vhdx --limit-id $idc --all" \
    "$V changes $dir/q64.vhdx --limit-id $id64b --all" \
    "nbdinfo --map=qemu:dirty-bitmap:b1 '$uri'" >/dev/null
  load >> "$dir/load$round.txt"
done
kill "$nbd_pid"; wait "$nbd_pid" 2>/dev/null || true; nbd_pid=
python3 - "$dir" "$sum" "$nchg" "$small" <<'PY' | tee -a "$out"
import sys, json, statistics
d, sumf, n, small = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rounds = [[x["median"] for x in json.load(open("%s/q%d.json" % (d, r)))["results"]] for r in (1, 2, 3)]
# load averages before and after each round ("1 5 15" on each line)
loads = [[l.split() for l in open("%s/load%d.txt" % (d, r))] for r in (1, 2, 3)]
rload = lambda r: "load %s before, %s after" % (" ".join(loads[r][0]), " ".join(loads[r][1]))
def ratio(f):   # median over the rounds of f(t64, tnbd, t1, tc, t64b, tnbdb)
    v = [f(*t) for t in rounds]
    return statistics.median(v), v
nbd100, nbd100v = ratio(lambda t64, tnbd, t1, tc, t64b, tnbdb: tnbd / t64)
nbd10, nbd10v = ratio(lambda t64, tnbd, t1, tc, t64b, tnbdb: tnbdb / t64b)
size, sizev = ratio(lambda t64, tnbd, t1, tc, t64b, tnbdb: t64 / t1)
ctl, ctlv = ratio(lambda t64, tnbd, t1, tc, t64b, tnbdb: tc / t1)
G, PAGE = 65536, 1020 * 65536          # granularity; disk bytes per leaf page of tags
def coalesce(rs):
    out = []
    for o, l in sorted(rs):
        if out and out[-1][0] + out[-1][1] == o: out[-1][1] += l
        else: out.append([o, l])
    return [tuple(x) for x in out]
def vhdkit(f): return coalesce((int(a), int(b)) for a, b in (l.split() for l in open(f)))
def nbd(f):
    return coalesce((int(x[0]), int(x[1])) for x in (l.split() for l in open(f)) if x[3] == "dirty")
def expect(f):   # 64 KiB blocks holding the written 4 KiB blocks
    return coalesce({(int(l) // G * G, G) for l in open(f)})
def pages(rs): return len({p for o, l in rs for p in range(o // PAGE, (o + l - 1) // PAGE + 1)})
b = lambda rs: sum(l for o, l in rs)
yn = lambda x: "yes" if x else "NO"
v64, q64, e64 = vhdkit(d + "/ch64.txt"), nbd(d + "/map64.txt"), expect(d + "/off64.txt")
v64b, q64b, e64b = vhdkit(d + "/ch64b.txt"), nbd(d + "/map64b.txt"), expect(d + "/off64b.txt")
v1, vc, e1 = vhdkit(d + "/ch1.txt"), vhdkit(d + "/chc.txt"), expect(d + "/off1.txt")
ok = v64 == q64 == e64 and v64b == q64b == e64b and v1 == vc == e1
print("64 TiB, %d changes: vhdkit %d ranges %d bytes; nbdinfo %d dirty extents %d bytes; identical to each other and to the writes: %s"
      % (n, len(v64), b(v64), len(q64), b(q64), yn(v64 == q64 == e64)))
print("64 TiB, last %d changes: vhdkit %d ranges; nbdinfo %d dirty extents; identical to each other and to the writes: %s"
      % (small, len(v64b), len(q64b), yn(v64b == q64b == e64b)))
print("1 TiB: %d ranges %d bytes; control (same offsets on 64 TiB): %d ranges; identical to each other and to the writes: %s"
      % (len(v1), b(v1), len(vc), yn(v1 == vc == e1)))
print("changed leaf pages of tags (1020 blocks each): 64 TiB %d (last %d changes: %d), 1 TiB %d, control %d"
      % (pages(v64), small, pages(v64b), pages(v1), pages(vc)))
names = ("vhdkit 64 TiB", "nbdinfo 64 TiB", "vhdkit 1 TiB", "vhdkit control", "vhdkit 64 TiB last %d" % small, "nbdinfo 64 TiB last %d" % small)
for r, t in enumerate(rounds):
    print("round %d (%s), hyperfine medians relative to vhdkit 64 TiB (%d changes): %s"
          % (r + 1, rload (r), n, "; ".join("%s %.3f" % (k, x / t[0]) for k, x in zip(names, t))))
fmt = lambda v: " ".join("%.2f" % x for x in v)
print("per round: nbdinfo/vhdkit %d changes %s; %d changes %s; vhdkit 64/1 TiB %s; control %s" % (n, fmt(nbd100v), small, fmt(nbd10v), fmt(sizev), fmt(ctlv)))
with open(sumf, "a") as s:
    s.write("2 query, 64 TiB, 64 KiB granularity, scattered 4 KiB changes: vhdkit changes --all vs nbdinfo --map=qemu:dirty-bitmap (qcow2 + qemu-nbd), target >= 10x faster\n")
    s.write("  %6d changes: vhdkit %.1fx faster (rounds: %s)\n" % (n, nbd100, fmt(nbd100v)))
    s.write("  (1-minute load at the rounds: %s)\n" % "; ".join("%s to %s" % (loads[r][0][0], loads[r][1][0]) for r in range(3)))
    s.write("  %6d changes: vhdkit %.1fx faster (rounds: %s)\n" % (small, nbd10, fmt(nbd10v)))
    s.write("  same answers from both: %s (%d ranges, %d bytes; %d ranges)\n" % (yn(ok), len(v64), b(v64), len(v64b)))
    s.write("  vhdkit time 64 TiB / 1 TiB, %d random changes each: %.2f (changed leaf pages of tags %d vs %d)\n" % (n, size, pages(v64), pages(v1)))
    s.write("  vhdkit time 64 TiB / 1 TiB, the same %d offsets (all in the first TiB): %.2f\n" % (n, ctl))
PY
rm -f "$dir"/q64.vhdx* "$dir"/q1.vhdx* "$dir"/q64c.vhdx* "$qc"

# ---- 3. precision ------------------------------------------------------
say "== 3. precision: 20000 random 4 KiB writes on a 64 GiB disk"
"$G" offsets $((64 << 30)) 20000 7 > "$dir/offp.txt"
for g in 4K 64K; do
  p=$dir/prec.vhdx
  rm -f "$p"*
  "$V" create "$p" --size 64G >/dev/null
  "$V" rct enable "$p" --granularity "$g" >/dev/null
  id=$("$V" rct checkpoint "$p")
  "$G" write "$p" "$dir/offp.txt" 10000 >/dev/null
  "$V" changes "$p" --limit-id "$id" --all > "$dir/chp-$g.txt"
  rm -f "$p"*
done
python3 - "$dir" "$sum" <<'PY' | tee -a "$out"
import sys
d, sumf = sys.argv[1], sys.argv[2]
offs = sorted({int(l) for l in open(d + "/offp.txt")})
true = len(offs) * 4096
res = []
for g in ("4K", "64K"):
    rs = sorted((int(a), int(b)) for a, b in (l.split() for l in open(d + "/chp-%s.txt" % g)))
    rep = sum(l for o, l in rs)
    # every written block must lie inside a reported range
    import bisect
    starts = [o for o, l in rs]
    missed = 0
    for o in offs:
        i = bisect.bisect_right(starts, o) - 1
        if i < 0 or o + 4096 > rs[i][0] + rs[i][1]: missed += 1
    print("granularity %s: reported %d bytes in %d ranges; written %d distinct blocks = %d bytes; missed blocks %d"
          % (g, rep, len(rs), len(offs), true, missed))
    res.append("%s %.3f%s" % (g, rep / true, "" if missed == 0 else " (%d written blocks MISSED)" % missed))
with open(sumf, "a") as s:
    s.write("3 precision, bytes reported / bytes written (20000 distinct random 4 KiB blocks, 64 GiB): granularity %s\n" % ", ".join(res))
PY

# ---- 4. tracking metadata after 1000 reference points --------------------
say "== 4. metadata: 1 TiB disk, 1000 rounds of 10 random 4 KiB writes + a reference point"
m=$dir/meta.vhdx
rm -f "$m"*
"$V" create "$m" --size 1T >/dev/null
"$V" rct enable "$m" --granularity 64K >/dev/null
"$G" rounds "$m" 1000 10 9 "$dir/rounds.log" > "$dir/ids.txt"
kib=$(du -k "$m.rct" "$m.mrt" | awk '{ s += $1 } END { print s }')
say "du -k: $(du -k "$m.rct" "$m.mrt" | tr '\n\t' '  ')(apparent: $(stat -c '%s' "$m.rct") + $(stat -c '%s' "$m.mrt") bytes)"
n=0
while read -r id; do
  n=$((n + 1))
  "$V" changes "$m" --limit-id "$id" --all > "$dir/meta-$n.txt" || echo "ID $n failed" >> "$dir/meta-fail.txt"
done < "$dir/ids.txt"
python3 - "$dir" "$sum" "$kib" <<'PY' | tee -a "$out"
import sys, os, collections
d, sumf, kib = sys.argv[1], sys.argv[2], int(sys.argv[3])
G = 65536
after = collections.defaultdict(set)          # round -> 64 KiB blocks written in it
for l in open(d + "/rounds.log"):
    r, o = map(int, l.split())
    after[r].add(int(o) // G)
ids = [l.strip() for l in open(d + "/ids.txt")]
fails = open(d + "/meta-fail.txt").read().splitlines() if os.path.exists(d + "/meta-fail.txt") else []
exact, later = 0, set()
for k in range(len(ids), 0, -1):            # ID k seals round k: changes since = rounds k+1..
    got = set()
    f = d + "/meta-%d.txt" % k
    if os.path.exists(f):
        for line in open(f):
            o, n = map(int, line.split())
            got.update(range(o // G, (o + n) // G))
    if got == later: exact += 1
    later |= after[k]
print("%d IDs issued; %d answered; %d answers exactly the blocks written after them" % (len(ids), len(ids) - len(fails), exact))
with open(sumf, "a") as s:
    s.write("4 tracking metadata after %d reference points (1 TiB, 64 KiB, 10 writes each): %d KiB allocated (.rct + .mrt) per TiB; IDs answering: %d/%d, exact: %d/%d\n"
            % (len(ids), kib, len(ids) - len(fails), len(ids), exact, len(ids)))
PY
rm -f "$m"* "$dir"/meta-*.txt

# ---- summary -------------------------------------------------------------
{
  echo
  echo "== summary: $hdr"
  echo "   load $(load) at the end"
  echo "   (every figure a ratio within this run, or a count; command: bench/rct.sh)"
  cat "$sum"
} | tee -a "$out"
echo "results in $out"
exit
}
