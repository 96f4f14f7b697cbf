#!/usr/bin/env bash
# make bench: VHDX engine benchmarks, each a ratio against an anchor
# measured in the same run (this machine is noisy; absolute times mean
# little).  Results: bench/results/<date>.txt and stdout.
#
#  1. convert raw -> VHDX and VHDX -> raw, vhdkit vs qemu-img, on a 4 GiB
#     input that is half data, half zeros (hyperfine, alternating runs).
#     qemu-img runs with -t writeback so that, like vhdkit, it flushes the
#     output before exiting (its default for convert, unsafe, never does)
#  2. random 4 KiB reads/writes through libvhdkit on a fixed VHDX, a
#     filled dynamic VHDX and a raw image, vs pread/pwrite on a raw file,
#     all on a tmpfs (see below)
#
# Environment: BENCH_DIR (scratch, default /var/tmp/vhdkit-bench; needs
# ~20 GiB), BENCH_SIZE_MB (default 4096), BENCH_RUNS (default 5),
# BENCH_OPS (random I/Os per run, default 200000).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
V=$top/build/vhdkit
dir=${BENCH_DIR:-/var/tmp/vhdkit-bench}
size_mb=${BENCH_SIZE_MB:-4096}
runs=${BENCH_RUNS:-5}
ops=${BENCH_OPS:-200000}
mkdir -p "$dir" "$top/bench/results"
out=$top/bench/results/$(date +%Y%m%d-%H%M%S).txt
for c in qemu-img hyperfine python3; do command -v $c >/dev/null || { echo "bench: $c missing (make deps)"; exit 1; }; done
cc -std=c11 -O2 -D_GNU_SOURCE -I"$top/include" "$top/bench/randio.c" "$top/build/libvhdkit.a" -pthread -o "$dir/randio"

say () { echo "$*" | tee -a "$out"; }
say "# vhdkit bench $(date -u +%FT%TZ) on $(nproc) cores; $("$V" --version); $(qemu-img --version | head -1)"

# --- inputs: 64 MiB stripes, data then zeros (holes) -------------------
in=$dir/in.raw
if [ ! -f "$in" ] || [ "$(stat -c %s "$in")" != $((size_mb << 20)) ]; then
  rm -f "$in"
  truncate -s "${size_mb}M" "$in"
  for ((s = 0; s < size_mb; s += 128)); do
    head -c 64M /dev/urandom | dd of="$in" bs=1M seek="$s" conv=notrunc status=none
  done
fi

mean () { python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results']; print(' '.join('%.4f' % x['mean'] for x in r))" "$1"; }

# --- 1. convert --------------------------------------------------------
hyperfine -N -w 1 -r "$runs" --export-json "$dir/c1.json" --style basic \
  --prepare "rm -f $dir/o1.vhdx $dir/o2.vhdx" \
  "$V convert --no-progress $in $dir/o1.vhdx" \
  "qemu-img convert -t writeback -O vhdx -o subformat=dynamic $in $dir/o2.vhdx" >/dev/null
read -r a b < <(mean "$dir/c1.json")
say "convert raw->vhdx   vhdkit ${a}s  qemu-img ${b}s  speed ratio (qemu/vhdkit) $(python3 -c "print('%.2f' % ($b/$a))")"
"$V" convert --no-progress "$in" "$dir/src.vhdx" 2>/dev/null || true
hyperfine -N -w 1 -r "$runs" --export-json "$dir/c2.json" --style basic \
  --prepare "rm -f $dir/o1.raw $dir/o2.raw" \
  "$V convert --no-progress $dir/src.vhdx $dir/o1.raw" \
  "qemu-img convert -t writeback -f vhdx -O raw $dir/src.vhdx $dir/o2.raw" >/dev/null
read -r a b < <(mean "$dir/c2.json")
say "convert vhdx->raw   vhdkit ${a}s  qemu-img ${b}s  speed ratio (qemu/vhdkit) $(python3 -c "print('%.2f' % ($b/$a))")"
# hyperfine's --prepare removed the outputs of the other command: make
# both once more and check them.
rm -f "$dir/o1.raw" "$dir/o2.raw"
"$V" convert --no-progress "$dir/src.vhdx" "$dir/o1.raw"
qemu-img convert -f vhdx -O raw "$dir/src.vhdx" "$dir/o2.raw"
cmp "$dir/o1.raw" "$in" && cmp "$dir/o2.raw" "$in" || { say "convert outputs differ from the input!"; exit 1; }
say "file sizes: input $(du -k "$in" | cut -f1) KiB allocated; vhdkit VHDX $(du -k "$dir/src.vhdx" | cut -f1) KiB; qemu VHDX $(du -k "$dir/o2.vhdx" | cut -f1) KiB"
rm -f "$dir"/o1.* "$dir"/o2.*

# --- 2. random 4 KiB I/O -------------------------------------------------
# On a tmpfs (RANDIO_DIR, default /dev/shm) with 1 GiB images: on the
# disk, page-cache writeback of everything else this machine does swamps
# the per-call cost being measured (seen: write IOPS varying 3x between
# identical runs).  Every byte of the three images is written first, so
# no call allocates.
rdir=${RANDIO_DIR:-/dev/shm}/vhdkit-randio.$$
mkdir -p "$rdir"
rawf=$rdir/rand.raw fixed=$rdir/rand-fixed.vhdx dyn=$rdir/rand-dyn.vhdx
dd if=/dev/zero of="$rawf" bs=1M count=1024 status=none
"$V" create "$fixed" --size 1G --type fixed >/dev/null
"$V" write "$fixed" --offset 0 < "$rawf"
"$V" create "$dyn" --size 1G >/dev/null
"$V" write "$dyn" --offset 0 < "$rawf"
targets=("posix $rawf" "vhdkit $rawf" "vhdkit $fixed" "vhdkit $dyn")
for i in 1 2 3 4 5; do
  # Rotate the order each round so no target always runs first.
  for k in 0 1 2 3; do
    t=${targets[$(( (k + i) % 4 ))]}
    set -- $t
    r=$("$dir/randio" "$1" "$2" "$ops" "$i")
    echo "$i $1 $(basename "$2") $r" >> "$dir/randio.txt.$$"
  done
done
rm -rf "$rdir"
python3 - "$dir/randio.txt.$$" <<'PY' | tee -a "$out"
import sys, collections, statistics
rows = collections.defaultdict(lambda: ([], []))
for line in open(sys.argv[1]):
    i, mode, f, r, w = line.split()
    key = mode + " " + f
    rows[key][0].append(float(r.split("=")[1])); rows[key][1].append(float(w.split("=")[1]))
base = rows["posix rand.raw"]
br, bw = statistics.median(base[0]), statistics.median(base[1])
for k, (r, w) in rows.items():
    print("random 4K %-28s read %8.0f IOPS (%.3f of posix)  write %8.0f IOPS (%.3f of posix)" %
          (k, statistics.median(r), statistics.median(r) / br, statistics.median(w), statistics.median(w) / bw))
PY
rm -f "$dir/randio.txt.$$"
echo "results in $out"
