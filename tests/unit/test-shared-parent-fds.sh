#!/usr/bin/env bash
# Twenty differencing children of one base open at once in one process
# (through the public API, read-write) share one open of the base
# (lib/chain.c, L-6): the base is open exactly once, each child costs one
# descriptor, two at most (three with change tracking: its .rct and
# .mrt), every child reads its own data over the base's, and closing
# them all gives every descriptor back.  bench/children.c measures and
# checks; this is its small run (bench/children.sh is the large one,
# bench/README.md).
. "$(dirname "$0")/../lib.sh"
bin=$VHDKIT_BUILD/bench/children
[ -x "$bin" ] || fail "$bin is missing (make all builds it)"
n=20

# run NAME MAX_FDS_PER_CHILD [-t]
run () {
  local name=$1 max=$2 one all f1 fn
  shift 2
  mkdir "$T/$name"
  "$bin" -n $n -s 4G -k 64 "$@" "$T/$name" > "$T/$name.out" 2> "$T/$name.err" ||
    fail "$name: bench/children failed: $(cat "$T/$name.err")"
  cat "$T/$name.out" >&2
  one=$(grep '^children=1 ' "$T/$name.out") || fail "$name: no figures for one child"
  all=$(grep "^children=$n " "$T/$name.out") || fail "$name: no figures for $n children"
  for l in "$one" "$all"; do
    case " $l " in *" base_opens=1 "*) ;; *) fail "$name: the base is not open exactly once: $l" ;; esac
  done
  f1=$(sed -n 's/.* fds=\([0-9-]*\) .*/\1/p' <<< "$one")
  fn=$(sed -n 's/.* fds=\([0-9-]*\) .*/\1/p' <<< "$all")
  [ -n "$f1" ] && [ -n "$fn" ] || fail "$name: no descriptor counts in: $one / $all"
  # One child opens its file and the base; each further child its own.
  [ $((fn - f1)) -ge $((n - 1)) ] && [ $((fn - f1)) -le $((max * (n - 1))) ] ||
    fail "$name: $n children hold $fn descriptors, one child $f1: not 1 to $max per child"
}
run plain 2
run tracking 3 -t
info "the base is open once with $n children open, at most 2 descriptors per child (3 with tracking)"
