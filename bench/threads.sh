#!/usr/bin/env bash
# bench/threads.sh: random 4 KiB reads and writes on ONE vhdkit handle
# with 1, 2, 4, 8 and 16 threads, against pread/pwrite on a raw file
# with the same threads (the ratio vhdkit/raw, from alternating runs),
# and tracking on vs off at 16 threads.  Files on $BENCH_DIR (default
# /dev/shm), 1 GiB, every block written first.
#   BENCH_OPS (default 400000) operations per run, BENCH_REPS (3) runs.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d "${BENCH_DIR:-/dev/shm}/vhdkit-bench-threads.XXXXXX")
trap 'rm -rf "$dir"' EXIT
ops=${BENCH_OPS:-400000} reps=${BENCH_REPS:-3}
cc -std=c11 -O2 -D_GNU_SOURCE -I"$top/include" "$top/bench/threadio.c" "$top/build/libvhdkit.a" -pthread -o "$dir/threadio"
V=$top/build/vhdkit
echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg), dir ${BENCH_DIR:-/dev/shm}"
"$V" create "$dir/d.vhdx" --size 1G --type fixed >/dev/null
dd if=/dev/zero of="$dir/d.raw" bs=1M count=1024 status=none
cp "$dir/d.vhdx" "$dir/t.vhdx"
"$V" rct enable "$dir/t.vhdx"
median () { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio () {   # ratio A B -> A/B with 3 decimals
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'
}
for rw in read write; do
  for t in 1 2 4 8 16; do
    : > "$dir/v"; : > "$dir/p"
    for r in $(seq "$reps"); do
      "$dir/threadio" vhdkit "$dir/d.vhdx" "$rw" "$t" "$ops" | sed 's/iops=//' >> "$dir/v"
      "$dir/threadio" posix "$dir/d.raw" "$rw" "$t" "$ops" | sed 's/iops=//' >> "$dir/p"
    done
    v=$(median < "$dir/v") p=$(median < "$dir/p")
    echo "$rw threads=$t vhdkit_iops=$v raw_iops=$p ratio=$(ratio "$v" "$p")"
  done
done
: > "$dir/on"; : > "$dir/off"
for r in $(seq "$reps"); do
  "$dir/threadio" vhdkit "$dir/t.vhdx" write 16 "$ops" | sed 's/iops=//' >> "$dir/on"
  "$dir/threadio" vhdkit "$dir/d.vhdx" write 16 "$ops" | sed 's/iops=//' >> "$dir/off"
done
on=$(median < "$dir/on") off=$(median < "$dir/off")
echo "write threads=16 tracking_on_iops=$on tracking_off_iops=$off ratio=$(ratio "$on" "$off")"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
