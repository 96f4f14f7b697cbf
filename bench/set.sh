#!/usr/bin/env bash
# bench/set.sh: VHD Set benchmarks.  Every figure is a ratio between
# measurements of the same run (this machine is noisy and shared; absolute
# times mean little).  Results: stdout and bench/results/set-<date>.txt.
#
#  a. snapshot: `vhdkit set snapshot SET.vhds` on a 64 GiB set whose leaf
#     holds 8 GiB of data, vs `qemu-img create -f qcow2 -b TOP.qcow2 -F
#     qcow2 NEW.qcow2` over a qcow2 holding the same 8 GiB: BENCH_SNAPS
#     snapshots per side per round, each after an untimed 1 MiB write into
#     the current leaf (so both chains grow alike), the sides alternating
#     one snapshot at a time; per round the ratio of the medians
#  b. delete = merge: `vhdkit set delete SET.vhds S1`, where S1 is the
#     base and its child (snapshot S2) holds the 8 GiB, vs `qemu-img commit
#     -t writeback -d TOP.qcow2` of the qcow2 overlay holding the same
#     8 GiB into its empty 64 GiB qcow2 base.  Both make the result durable
#     before they exit: vhdkit by design (VS-4), qemu-img because
#     writeback (its default for commit, spelt out) flushes at close (-t
#     unsafe would not flush; -t none would bypass the page cache, which
#     vhdkit uses).  A small pre-flight run under strace counts each
#     side's fsync/fdatasync calls to show that both do flush.  -d: the
#     overlay is dropped afterwards, as the snapshot's image is by the
#     delete, so it is not emptied first; the delete also removes the
#     merged-away file, so the like-for-like figure is commit + `rm` of
#     the overlay (both timed); commit alone is reported too.  Before each
#     timing, both sides' files are written back and dropped from the
#     page cache (dd iflag=nocache), so each reads its 8 GiB from the
#     disk, as a merge of an old snapshot would.  One timing per side per
#     round, the sides' order swapped every round, the ratios of two
#     consecutive rounds paired (see below)
#  c. snapshot-to-snapshot query: a 64 TiB set (64 KiB granularity), S1,
#     BENCH_CHANGES scattered 4 KiB writes (bench/rctgen.c), S2:
#     `vhdkit changes SET.vhds --limit-id S1 --target-snapshot-id S2
#     --all` vs `nbdinfo --map=qemu:dirty-bitmap:b0` from qemu-nbd serving
#     a 64 TiB qcow2 with a 64 KiB persistent bitmap and the same writes
#     (built exactly as bench/rct.sh builds its anchor); also the query
#     from S1 to the leaf, and the same changes on a plain 64 TiB VHDX
#     (`vhdkit changes IMG.vhdx`, bench/rct.sh's measurement).  hyperfine,
#     three rounds, the command order reversed every round; all answers
#     must be the same ranges
#
# Environment: BENCH_DIR (scratch, default /var/tmp/vhdkit-bench-set;
# needs 3 x BENCH_DATA_GIB + 4 GiB, 28 GiB, at most; removed at the end),
# BENCH_ROUNDS (rounds of a and b, default 6: even, see b), BENCH_SETTLE
# (seconds of rest before each timing of b, default 20), BENCH_SNAPS (snapshots per
# side per round, default 5), BENCH_RUNS (hyperfine runs per command,
# default 5), BENCH_CHANGES (default 100000), BENCH_DATA_GIB (the changed
# data of a and b, default 8, written as that many 1 GiB pieces spread
# over the 64 GiB).  Takes 25 to 35 minutes (deleting the 64 TiB images
# of c has taken from seconds to 6 minutes).

# The whole script is one block, so bash has read all of it before it
# runs any of it: an edit of this file during a run cannot change the run.
{
set -euo pipefail
shopt -s inherit_errexit
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${BENCH_DIR:-/var/tmp/vhdkit-bench-set}
rounds=${BENCH_ROUNDS:-6}
settle=${BENCH_SETTLE:-20}
snaps=${BENCH_SNAPS:-5}
runs=${BENCH_RUNS:-5}
nchg=${BENCH_CHANGES:-100000}
gib=${BENCH_DATA_GIB:-8}
G=$((1 << 30))
for c in qemu-img qemu-io qemu-nbd nbdinfo hyperfine python3 cc; do
  command -v $c >/dev/null || { echo "bench: $c missing (apt-get install qemu-utils libnbd-bin hyperfine)"; exit 1; }
done
make -C "$top" -s -q build/vhdkit build/libvhdkit.a 2>/dev/null || { echo "bench: build/ is missing or older than the sources: run make first"; exit 1; }
"$top/build/vhdkit" set --help >/dev/null 2>&1 || { echo "bench: build/vhdkit has no 'set' verb"; exit 1; }
{ [ "$gib" -ge 1 ] && [ "$gib" -le 64 ]; } || { echo "bench: BENCH_DATA_GIB must be 1..64"; exit 1; }
mkdir -p "$dir" "$top/bench/results"
exec 9> "$dir/.lock"
flock -n 9 || { echo "bench: another bench/set.sh is using $dir (set BENCH_DIR)"; exit 1; }
avail=$(df -P -k "$dir" | awk 'NR == 2 { print $4 }')
need_kib=$(( (3 * gib + 4) << 20 ))   # both sides' data, one merged copy, the chunk
[ "$avail" -ge "$need_kib" ] || { echo "bench: $dir has $((avail >> 20)) GiB free, needs $((need_kib >> 20))"; exit 1; }
# One version for the whole run, even if the tree is rebuilt meanwhile.
cp "$top/build/vhdkit" "$dir/vhdkit"
cp "$top/build/libvhdkit.a" "$dir/libvhdkit.a"
V=$dir/vhdkit
cc -std=c11 -O2 -Wall -Wextra -D_GNU_SOURCE -I"$top/include" "$top/bench/rctgen.c" "$dir/libvhdkit.a" -pthread -o "$dir/rctgen"
RG=$dir/rctgen
rev=$(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)
out=$top/bench/results/set-$(date +%Y%m%d-%H%M%S).txt
sum=$dir/summary.txt
: > "$sum"

nbd_pid=
cleanup () {
  if [ -n "$nbd_pid" ]; then kill "$nbd_pid" 2>/dev/null || true; wait "$nbd_pid" 2>/dev/null || true; fi
  rm -rf "$dir/v" "$dir/q" "$dir/c" "$dir/pre" "$dir/chunk.bin" "$dir/libvhdkit.a" "$dir/nbd.sock"
}
trap cleanup EXIT
cleanup

say () { echo "$*" | tee -a "$out"; }
hdr="# vhdkit set bench $(date -u +%FT%TZ) on $(nproc) cores; $("$V" --version) ($rev); $(qemu-img --version | sed -n 1p); $(nbdinfo --version | sed -n 1p)"
say "$hdr"
us () { local t=${EPOCHREALTIME//[!0-9]/}; echo $((10#$t)); }
# timed FILE LABEL CMD...: run CMD (stdout to $dir/last.out), append
# "LABEL MICROSECONDS" to FILE
timed () {
  local f=$1 l=$2 t0 t1
  shift 2
  t0=$(us)
  "$@" > "$dir/last.out"
  t1=$(us)
  echo "$l $((t1 - t0))" >> "$f"
}
# The ID printed by the last `vhdkit set snapshot`
last_id () { tr -d ' \n\r' < "$dir/last.out"; }

head -c 1G /dev/urandom > "$dir/chunk.bin"
# fill_v SET / fill_q QCOW2: the changed data, GIB pieces of 1 GiB, one
# at the start of every 64/GIB GiB
stride=$(( (64 / gib) * G ))
fill_v () {
  local k
  for ((k = 0; k < gib; k++)); do "$V" write "$1" --offset $((k * stride)) < "$dir/chunk.bin"; done
}
fill_q () {
  local k args=()
  for ((k = 0; k < gib; k++)); do args+=(-c "write -q -s $dir/chunk.bin $((k * stride)) 1G"); done
  qemu-io -f qcow2 -t unsafe "${args[@]}" "$1" > "$dir/qemu-io.log" 2>&1
  if grep -Ei 'error|fail' "$dir/qemu-io.log" | head -3 | grep .; then say "qemu-io failed (log: $dir/qemu-io.log)"; exit 1; fi
}
# check_piece READER...: the first MiB of each piece is the chunk's
head -c 1M "$dir/chunk.bin" | sha256sum | cut -d' ' -f1 > "$dir/piece.sha"
check_v () {   # check_v PATH LABEL
  local k
  for ((k = 0; k < gib; k++)); do
    [ "$("$V" read "$1" --offset $((k * stride)) --length 1048576 | sha256sum | cut -d' ' -f1)" = "$(cat "$dir/piece.sha")" ] ||
      { say "WRONG DATA: $2: vhdkit read $1 at $((k * stride)) is not the data written"; exit 1; }
  done
}

# ---- pre-flight: both sides flush (strace) -----------------------------
say "== pre-flight: flush calls of each side, 64 MiB of data in a 1 GiB disk (strace -f -c)"
syncs () {   # syncs CMD...: the number of fsync/fdatasync/sync_file_range/syncfs calls
  strace -f -qq -c -o "$dir/strace.txt" -e trace=fsync,fdatasync,sync_file_range,syncfs "$@" > /dev/null 2>&1 || { echo "?"; return 0; }
  awk '$NF ~ /^(fsync|fdatasync|sync_file_range|syncfs)$/ { printf "%s %s ", $NF, $4 }' "$dir/strace.txt"
}
if command -v strace >/dev/null && strace -f -qq -o /dev/null true 2>/dev/null; then
  p=$dir/pre
  mkdir -p "$p"
  "$V" create "$p/d.vhdx" --size 1G >/dev/null
  "$V" set convert "$p/d.vhdx" >/dev/null
  s1=$("$V" set snapshot "$p/d.vhds")
  head -c 64M "$dir/chunk.bin" | "$V" write "$p/d.vhds" --offset 0
  a=$(syncs "$V" set snapshot "$p/d.vhds")
  b=$(syncs "$V" set delete "$p/d.vhds" "$s1")
  qemu-img create -q -f qcow2 "$p/b.qcow2" 1G
  qemu-img create -q -f qcow2 -b "$p/b.qcow2" -F qcow2 "$p/t.qcow2"
  qemu-io -f qcow2 -t unsafe -c "write -q -s $dir/chunk.bin 0 64M" "$p/t.qcow2" > /dev/null
  c=$(syncs qemu-img create -q -f qcow2 -b "$p/t.qcow2" -F qcow2 "$p/u.qcow2")
  d=$(syncs qemu-img commit -q -t writeback -d "$p/t.qcow2")
  say "vhdkit set snapshot: ${a:-none}; qemu-img create -b: ${c:-none}"
  say "vhdkit set delete (merge): ${b:-none}; qemu-img commit -t writeback -d: ${d:-none}"
  echo "pre-flight flush calls: snapshot ${a:-none}/ create ${c:-none}; delete ${b:-none}/ commit ${d:-none}" >> "$sum"
  rm -rf "$p"
else
  say "strace is missing or not permitted: flush calls not counted"
fi

# ---- a and b -----------------------------------------------------------
say "== a/b: 64 GiB, $gib GiB of data; $rounds rounds; $snaps snapshots per side per round; then delete vs commit"
: > "$dir/ab.txt"
# build_v / build_q: the state before the timings of a round
build_v () {
  rm -rf "$dir/v"; mkdir -p "$dir/v"
  "$V" create "$dir/v/d.vhdx" --size 64G >/dev/null
  "$V" set convert "$dir/v/d.vhdx" >/dev/null
  vs1=$("$V" set snapshot "$dir/v/d.vhds")
  fill_v "$dir/v/d.vhds"
}
build_q () {
  rm -rf "$dir/q"; mkdir -p "$dir/q"
  qemu-img create -q -f qcow2 "$dir/q/base.qcow2" 64G
  qemu-img create -q -f qcow2 -b "$dir/q/base.qcow2" -F qcow2 "$dir/q/top.qcow2"
  fill_q "$dir/q/top.qcow2"
  qtop=$dir/q/top.qcow2
}
# uncache DIR...: write back the files in DIR... and drop them from the
# page cache (posix_fadvise DONTNEED through dd), only those files
uncache () {
  local f
  sync
  for f in "$@"; do
    find "$f" -type f -exec dd if={} iflag=nocache count=0 status=none \;
  done
}
for ((r = 1; r <= rounds; r++)); do
  # a: both sides built (the 8 GiB each), then snapshots alternating one
  # at a time, the side going first swapped every round
  build_v
  build_q
  sync
  for ((k = 1; k <= snaps; k++)); do
    if (( (r + k) % 2 )); then order="v q"; else order="q v"; fi
    for side in $order; do
      if [ "$side" = v ]; then
        [ "$k" = 1 ] || head -c 1M "$dir/chunk.bin" | "$V" write "$dir/v/d.vhds" --offset $((k * 1048576 + 512 * G / 1024))
        timed "$dir/ab.txt" "$r snap v" "$V" set snapshot "$dir/v/d.vhds"
        [ "$k" = 1 ] && vs2=$(last_id)
      else
        [ "$k" = 1 ] || qemu-io -f qcow2 -t unsafe -c "write -q -s $dir/chunk.bin $((k * 1048576 + 512 * G / 1024)) 1M" "$qtop" > /dev/null
        timed "$dir/ab.txt" "$r snap q" qemu-img create -q -f qcow2 -b "$qtop" -F qcow2 "$dir/q/s$k.qcow2"
        qtop=$dir/q/s$k.qcow2
      fi
    done
  done
  # b: delete S1 (the base: its child, S2's image, holds the data) vs
  # commit of the overlay holding the data into its base.  Each side starts
  # with its files written back and out of the page cache: 2 x 8 GiB of
  # data plus what the first side writes do not fit in the cache, so
  # whichever side went second read its data from the disk and the first
  # (partly) from memory (seen: 6 s vs 12 s for the same commit).  Even
  # so, the side going second was slower in every round of a run (17-42 s
  # for the same 8 GiB merge; the disk is virtual, its host's write-back
  # of the first side's 8 GiB is invisible here): BENCH_SETTLE seconds of
  # rest before each timing, and the figure pairs a round where vhdkit
  # went first with one where it went second (geometric mean of the two
  # ratios), so the order cancels out; the median over the pairs
  if ((r % 2)); then order="v q"; else order="q v"; fi
  for side in $order; do
    uncache "$dir/v" "$dir/q"
    sleep "$settle"
    if [ "$side" = v ]; then
      du_before=$(du -sk "$dir/v" | cut -f1)
      timed "$dir/ab.txt" "$r delete v" "$V" set delete "$dir/v/d.vhds" "$vs1"
      say "round $r: vhdkit set delete: $(find "$dir/v" -name '*vhdx' | wc -l) images left; du $du_before -> $(du -sk "$dir/v" | cut -f1) KiB"
      check_v "$dir/v/d.vhds@$vs2" "round $r, snapshot S2 after the delete"
      check_v "$dir/v/d.vhds" "round $r, the leaf after the delete"
    else
      timed "$dir/ab.txt" "$r delete q" qemu-img commit -q -t writeback -d "$dir/q/top.qcow2"
      timed "$dir/ab.txt" "$r rm q" rm -f "$dir/q/top.qcow2"
      say "round $r: qemu-img commit: base.qcow2 now $(du -k "$dir/q/base.qcow2" | cut -f1) KiB"
    fi
  done
  rm -rf "$dir/v" "$dir/q"
done
python3 - "$dir/ab.txt" "$sum" "$gib" <<'PY' | tee -a "$out"
import sys, statistics as st, collections
t = collections.defaultdict(list)          # (round, what, side) -> [seconds]
for line in open(sys.argv[1]):
    r, what, side, u = line.split()
    t[(int(r), what, side)].append(int(u) / 1e6)
rounds = sorted({k[0] for k in t})
fmt = lambda v: " ".join("%.2f" % x for x in v)
snap = [st.median(t[(r, "snap", "q")]) / st.median(t[(r, "snap", "v")]) for r in rounds]
first = [t[(r, "snap", "q")][0] / t[(r, "snap", "v")][0] for r in rounds]
dele = [t[(r, "delete", "q")][0] / t[(r, "delete", "v")][0] for r in rounds]
dele_rm = [(t[(r, "delete", "q")][0] + t[(r, "rm", "q")][0]) / t[(r, "delete", "v")][0] for r in rounds]
# rounds 2j-1 and 2j have the sides in opposite orders: pair them
pair = lambda v: [(v[i] * v[i + 1]) ** 0.5 for i in range(0, len(v) - 1, 2)] or v
for r in rounds:
    print("round %d (%s first): snapshot medians vhdkit %.3f s, qemu-img create %.3f s (vhdkit: %s; qemu: %s); delete %.2f s, commit %.2f s (+ rm %.3f s)"
          % (r, "vhdkit" if r % 2 else "qemu-img", st.median(t[(r, "snap", "v")]), st.median(t[(r, "snap", "q")]),
             fmt(t[(r, "snap", "v")]), fmt(t[(r, "snap", "q")]),
             t[(r, "delete", "v")][0], t[(r, "delete", "q")][0], t[(r, "rm", "q")][0]))
with open(sys.argv[2], "a") as s:
    for l in ("a snapshot, 64 GiB set with %s GiB in the leaf: qemu-img create -b time / vhdkit set snapshot time: median %.2f (rounds: %s); first snapshot of each round (seals the leaf holding the data) %.2f"
              % (sys.argv[3], st.median(snap), fmt(snap), st.median(first)),
              "b delete = merge of %s GiB: (qemu-img commit -t writeback -d, then rm of the overlay) time / vhdkit set delete time: median of %d order-balanced pairs %.2f (pairs: %s; rounds: %s); commit alone: %.2f (pairs: %s; rounds: %s)"
              % (sys.argv[3], len(pair(dele_rm)), st.median(pair(dele_rm)), fmt(pair(dele_rm)), fmt(dele_rm),
                 st.median(pair(dele)), fmt(pair(dele)), fmt(dele))):
        print(l)
        s.write(l + "\n")
PY

# ---- c. snapshot-to-snapshot query -------------------------------------
say "== c. query: 64 TiB, $nchg scattered changed 4 KiB blocks between two snapshots, 64 KiB granularity"
c=$dir/c
mkdir -p "$c"
"$RG" offsets $((64 << 40)) "$nchg" 42 > "$c/off.txt"
# (one retry, as in bench/rct.sh: this machine has answered fdatasync
# with a transient ENOSPC while writing a 64 TiB image)
for try in 1 2; do
  rm -f "$c"/s.* "$c"/s_*
  "$V" create "$c/s.vhdx" --size 64T >/dev/null
  "$V" set convert "$c/s.vhdx" --granularity 64K >/dev/null
  cs1=$("$V" set snapshot "$c/s.vhds")
  if "$RG" write "$c/s.vhds" "$c/off.txt" 10000 >/dev/null; then break; fi
  echo "bench: writing $c/s.vhds failed (try $try)" >&2
  [ $try = 2 ] && exit 1
done
cs2=$("$V" set snapshot "$c/s.vhds")
for try in 1 2; do
  rm -f "$c"/p.vhdx*
  "$V" create "$c/p.vhdx" --size 64T >/dev/null
  "$V" rct enable "$c/p.vhdx" --granularity 64K >/dev/null
  pid1=$("$V" rct checkpoint "$c/p.vhdx")
  if "$RG" write "$c/p.vhdx" "$c/off.txt" 10000 >/dev/null; then break; fi
  echo "bench: writing $c/p.vhdx failed (try $try)" >&2
  [ $try = 2 ] && exit 1
done
qc=$c/q.qcow2
qemu-img create -q -f qcow2 "$qc" 64T
qemu-img bitmap --add -g 65536 "$qc" b0
awk '{ print "write -q " $1 " 4k" }' "$c/off.txt" | qemu-io -f qcow2 -t unsafe "$qc" > "$dir/qemu-io.log" 2>&1
if grep -Ei 'error|fail' "$dir/qemu-io.log" | head -3 | grep .; then say "qemu-io failed (log: $dir/qemu-io.log)"; exit 1; fi
sync                                   # no write-back during the timings
sock=$dir/nbd.sock
rm -f "$sock"
qemu-nbd -r -t -B b0 -k "$sock" -f qcow2 "$qc" > "$dir/qemu-nbd.log" 2>&1 &
nbd_pid=$!
for ((t = 0; t < 600; t++)); do
  [ -S "$sock" ] && break
  kill -0 "$nbd_pid" 2>/dev/null || { say "qemu-nbd exited: $(cat "$dir/qemu-nbd.log")"; exit 1; }
  sleep 0.1
done
[ -S "$sock" ] || { say "qemu-nbd: no socket after 60 s"; exit 1; }
uri="nbd+unix:///?socket=$sock"
cmds=("$V changes $c/s.vhds --limit-id $cs1 --target-snapshot-id $cs2 --all"
      "nbdinfo --map=qemu:dirty-bitmap:b0 '$uri'"
      "$V changes $c/s.vhds --limit-id $cs1 --all"
      "$V changes $c/p.vhdx --limit-id $pid1 --all")
"$V" changes "$c/s.vhds" --limit-id "$cs1" --target-snapshot-id "$cs2" --all > "$c/ch12.txt"
nbdinfo --map=qemu:dirty-bitmap:b0 "$uri" > "$c/map.txt"
"$V" changes "$c/s.vhds" --limit-id "$cs1" --all > "$c/ch1l.txt"
"$V" changes "$c/p.vhdx" --limit-id "$pid1" --all > "$c/chp.txt"
for round in 1 2 3; do
  if ((round % 2)); then idx="0 1 2 3"; else idx="3 2 1 0"; fi
  args=()
  for i in $idx; do args+=("${cmds[$i]}"); done
  hyperfine -N -w 1 -r "$runs" --export-json "$c/q$round.json" "${args[@]}" > "$c/hyperfine$round.log" 2>&1 ||
    { cat "$c/hyperfine$round.log"; exit 1; }
done
kill "$nbd_pid"; wait "$nbd_pid" 2>/dev/null || true; nbd_pid=
printf '%s\n' "${cmds[@]}" > "$c/cmds.txt"
python3 - "$c" "$sum" "$nchg" <<'PY' | tee -a "$out"
import sys, json, statistics
d, sumf, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
cmds = open(d + "/cmds.txt").read().splitlines()
rounds = []
for r in (1, 2, 3):
    m = {x["command"]: x["median"] for x in json.load(open("%s/q%d.json" % (d, r)))["results"]}
    rounds.append([m[c] for c in cmds])
G = 65536
def coalesce(rs):
    out = []
    for o, l in sorted(rs):
        if out and out[-1][0] + out[-1][1] == o: out[-1][1] += l
        else: out.append([o, l])
    return [tuple(x) for x in out]
def vhdkit(f): return coalesce((int(a), int(b)) for a, b in (l.split()[:2] for l in open(f)))
def nbd(f): return coalesce((int(x[0]), int(x[1])) for x in (l.split() for l in open(f)) if x[3] == "dirty")
want = coalesce({(int(l) // G * G, G) for l in open(d + "/off.txt")})
s12, sl, p, q = vhdkit(d + "/ch12.txt"), vhdkit(d + "/ch1l.txt"), vhdkit(d + "/chp.txt"), nbd(d + "/map.txt")
b = lambda rs: sum(l for o, l in rs)
yn = lambda x: "yes" if x else "NO"
ok = s12 == sl == p == q == want
print("answers: vhdkit S1..S2 %d ranges %d bytes; S1..leaf %d; plain image %d; nbdinfo %d dirty extents %d bytes; expected %d ranges; all identical: %s"
      % (len(s12), b(s12), len(sl), len(p), len(q), b(q), len(want), yn(ok)))
if s12 != want:
    miss = set(want) - set(s12)
    print("vhdkit S1..S2 differs from the writes: %d expected ranges missing (first %s), %d ranges extra (first %s)"
          % (len(miss), sorted(miss)[:3], len(set(s12) - set(want)), sorted(set(s12) - set(want))[:3]))
names = ("vhdkit S1..S2", "nbdinfo", "vhdkit S1..leaf", "vhdkit plain image")
for r, t in enumerate(rounds):
    print("round %d, hyperfine medians relative to vhdkit S1..S2: %s" % (r + 1, "; ".join("%s %.3f" % (k, x / t[0]) for k, x in zip(names, t))))
fast = [t[1] / t[0] for t in rounds]
leaf = [t[2] / t[0] for t in rounds]
plain = [t[0] / t[3] for t in rounds]
fmt = lambda v: " ".join("%.2f" % x for x in v)
with open(sumf, "a") as s:
    for l in ("c query, 64 TiB set, %d scattered 4 KiB changes between two snapshots, 64 KiB granularity: nbdinfo --map time / vhdkit changes --limit-id S1 --target-snapshot-id S2 --all time: median %.2f (rounds: %s); same answers: %s (%d ranges)"
              % (n, statistics.median(fast), fmt(fast), yn(ok), len(s12)),
              "  vhdkit S1..leaf time / S1..S2 time: %.2f; vhdkit S1..S2 on the set / the same query on a plain VHDX: %.2f (rounds: %s)"
              % (statistics.median(leaf), statistics.median(plain), fmt(plain))):
        print(l)
        s.write(l + "\n")
PY
rm -rf "$c"

# ---- summary -------------------------------------------------------------
{
  echo
  echo "== summary: $hdr"
  echo "   (every figure a ratio within this run, > 1 = vhdkit faster; command: bench/set.sh; BENCH_ROUNDS=$rounds BENCH_SETTLE=$settle BENCH_SNAPS=$snaps BENCH_RUNS=$runs BENCH_CHANGES=$nchg BENCH_DATA_GIB=$gib)"
  cat "$sum"
} | tee -a "$out"
echo "results in $out"
exit
}
