#!/usr/bin/env bash
# bench/children.sh: memory and file descriptors of 100 differencing
# children of one base open at once in one process, against one child
# open (bench/children.c, built by make), with and without change
# tracking on the children.  Target: the base open once.  Files on
# $BENCH_DIR (default /dev/shm; the figures are of the process, not of
# the page cache).
#   BENCH_CHILDREN (default 100), BENCH_SIZE (64G), BENCH_BLOCK (the
#   base's block size, 1M), BENCH_DATA (places of data in the base, 4096).
# Results: stdout and bench/results/children-<date>.txt.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=$top/build/bench/children
[ -x "$bin" ] || { echo "bench/children.sh: $bin is missing (run make)" >&2; exit 1; }
n=${BENCH_CHILDREN:-100} size=${BENCH_SIZE:-64G} block=${BENCH_BLOCK:-1M} data=${BENCH_DATA:-4096}
mkdir -p "$top/bench/results"
out=$top/bench/results/children-$(date +%Y%m%d-%H%M%S).txt
{
  dir=
  trap 'rm -rf "$dir"' EXIT
  echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg), dir ${BENCH_DIR:-/dev/shm}"
  for t in "" -t; do
    dir=$(mktemp -d "${BENCH_DIR:-/dev/shm}/vhdkit-bench-children.XXXXXX")
    "$bin" -n "$n" -s "$size" -b "$block" -k "$data" ${t:+"$t"} "$dir"
    rm -rf "$dir"
  done
  echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"
echo "results in $out"
