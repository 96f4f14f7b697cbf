#!/usr/bin/env bash
# tests/run.sh — run vhdkit's test suite.
#
#   tests/run.sh [--build DIR] [--asan-build DIR] [--tsan-build DIR] [-j N] [FILTER...]
#
# Runs every unit binary DIR/tests/test-* and every shell test
# tests/*/test-*.sh, in parallel, each under a timeout, with its output in
# DIR/test-logs/<name>.log.  With --asan-build, also runs that build's unit
# binaries and the tests/corpus and tests/badinput shell tests against its
# vhdkit, labelled "[asan]".  With --tsan-build, also runs that build's
# threaded unit tests (tsan_units below) under ThreadSanitizer, labelled
# "[tsan]"; any report fails the test.  FILTER arguments keep only the tests whose name
# contains one of them.
#
# Contract with the tests (see tests/lib.sh): exit 0 = pass, 77 = skip,
# anything else = fail.  Prints one line per test as it completes, then
# exactly one closing line "N passed, N failed, N skipped".  Exits non-zero
# if any test failed or if no test ran.
#
# Environment: VHDKIT_TEST_TIMEOUT (seconds per test, default 900),
# VHDKIT_TEST_JOBS (parallel jobs, default nproc), VHDKIT_CORPUS (default
# ../shared/corpus beside the repository).
set -uo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$TOP" || exit 1

usage () {
  sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

build=build
asan_build=
tsan_build=
jobs=${VHDKIT_TEST_JOBS:-$(nproc 2>/dev/null || echo 2)}
filters=()
while [ $# -gt 0 ]; do
  case $1 in
    --build)        [ $# -ge 2 ] || { echo "run.sh: --build needs DIR" >&2; exit 2; }
                    build=$2; shift 2 ;;
    --build=*)      build=${1#*=}; shift ;;
    --asan-build)   [ $# -ge 2 ] || { echo "run.sh: --asan-build needs DIR" >&2; exit 2; }
                    asan_build=$2; shift 2 ;;
    --asan-build=*) asan_build=${1#*=}; shift ;;
    --tsan-build)   [ $# -ge 2 ] || { echo "run.sh: --tsan-build needs DIR" >&2; exit 2; }
                    tsan_build=$2; shift 2 ;;
    --tsan-build=*) tsan_build=${1#*=}; shift ;;
    -j)             [ $# -ge 2 ] || { echo "run.sh: -j needs N" >&2; exit 2; }
                    jobs=$2; shift 2 ;;
    -j*)            jobs=${1#-j}; shift ;;
    -h|--help)      usage; exit 0 ;;
    --)             shift; filters+=("$@"); break ;;
    -*)             echo "run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    *)              filters+=("$1"); shift ;;
  esac
done

timeout_s=${VHDKIT_TEST_TIMEOUT:-900}
case $timeout_s in ''|*[!0-9]*|0) echo "run.sh: VHDKIT_TEST_TIMEOUT must be a positive integer" >&2; exit 2 ;; esac
case $jobs in ''|*[!0-9]*|0) echo "run.sh: job count must be a positive integer" >&2; exit 2 ;; esac

build=$(realpath -m -- "$build")
[ -n "$asan_build" ] && asan_build=$(realpath -m -- "$asan_build")
[ -n "$tsan_build" ] && tsan_build=$(realpath -m -- "$tsan_build")
corpus=$(realpath -m -- "${VHDKIT_CORPUS:-$TOP/../shared/corpus}")
logdir=$build/test-logs
mkdir -p "$logdir" || exit 1

# Shell tests that are also run against the ASan+UBSan build: whole
# directories, or single tests by name.
asan_shell_dirs=(corpus badinput fuzz set/test-set-ops set/test-set-badinput unit/test-shared-parent-fds daemon/test-daemon-cimxml-hostile)
# Unit tests that run many threads on one handle: also under TSan.
# vhdkitd's many threads (request pool, job workers, registry) under
# concurrent good and bad calls.
tsan_shells=(daemon/test-daemon-json-hostile)
tsan_units=(test-stress test-disk-threads test-inflight test-mt-crash)

# ---- collect the tests -------------------------------------------------
# Parallel arrays, one entry per test run:
#   t_name   label printed and matched by FILTER ("unit/test-crc32c",
#            "corpus/test-qemu-read", "[asan] unit/test-crc32c")
#   t_log    its log file
#   t_build  the build directory it runs against
#   t_asan   1 when it runs against the sanitizer build
#   t_cmd    the command (a unit binary, or a shell script run with bash)
#   t_kind   unit | shell
t_name=() t_log=() t_build=() t_asan=() t_cmd=() t_kind=()

selected () {
  local f
  [ ${#filters[@]} -eq 0 ] && return 0
  for f in "${filters[@]}"; do
    case $1 in *"$f"*) return 0 ;; esac
  done
  return 1
}

add_test () {   # add_test NAME LOGREL BUILD ASAN KIND CMD
  selected "$1" || return 0
  t_name+=("$1") t_log+=("$logdir/$2.log") t_build+=("$3")
  t_asan+=("$4") t_kind+=("$5") t_cmd+=("$6")
}

add_units () {   # add_units BUILD ASAN PREFIX
  local f n
  for f in "$1"/tests/test-*; do
    if [ ! -f "$f" ] || [ ! -x "$f" ]; then continue; fi
    case $f in *.o|*.d|*.log) continue ;; esac
    n=unit/${f##*/}
    add_test "$3$n" "${3:+asan/}$n" "$1" "$2" unit "$f"
  done
}

shell_tests=()
while IFS= read -r f; do
  shell_tests+=("$f")
done < <(for f in tests/*/test-*.sh; do [ -f "$f" ] && printf '%s\n' "$f"; done | LC_ALL=C sort)

add_shells () {   # add_shells BUILD ASAN PREFIX [DIR...]
  local b=$1 a=$2 p=$3 f n d ok
  shift 3
  for f in "${shell_tests[@]}"; do
    n=${f#tests/}; n=${n%.sh}
    if [ $# -gt 0 ]; then
      ok=
      for d in "$@"; do
        case $n in "$d"/*|"$d") ok=1 ;; esac
      done
      [ -n "$ok" ] || continue
    fi
    add_test "$p$n" "${p:+asan/}$n" "$b" "$a" shell "$TOP/$f"
  done
}

add_units "$build" 0 ""
add_shells "$build" 0 ""
if [ -n "$asan_build" ]; then
  add_units "$asan_build" 1 "[asan] "
  add_shells "$asan_build" 1 "[asan] " "${asan_shell_dirs[@]}"
fi
if [ -n "$tsan_build" ]; then
  for u in "${tsan_units[@]}"; do
    add_test "[tsan] unit/$u" "tsan/unit/$u" "$tsan_build" 2 unit "$tsan_build/tests/$u"
  done
  for f in "${tsan_shells[@]}"; do
    add_test "[tsan] $f" "tsan/$f" "$tsan_build" 2 shell "$TOP/tests/$f.sh"
  done
fi
ntests=${#t_name[@]}

# ---- loud warnings before anything runs --------------------------------
banner () {
  echo "########################################################################"
  printf '### %s\n' "$@"
  echo "########################################################################"
}

needs_corpus () {   # tests/corpus/*, or a shell test that calls corpus_file/_copy
  [ "${t_kind[$1]}" = shell ] || return 1
  case ${t_cmd[$1]} in "$TOP"/tests/corpus/*) return 0 ;; esac
  grep -qE 'corpus_(file|copy)' "${t_cmd[$1]}"
}

corpus_banner=
if [ ! -d "$corpus" ]; then
  n=0
  for ((i = 0; i < ntests; i++)); do
    needs_corpus "$i" && n=$((n + 1))
  done
  corpus_banner="CORPUS MISSING: $n corpus tests will be SKIPPED (no directory $corpus; set VHDKIT_CORPUS)"
  banner "$corpus_banner"
fi
[ -x "$build/vhdkit" ] ||
  echo "WARNING: $build/vhdkit does not exist or is not executable (run make first)"
if [ -n "$asan_build" ] && [ ! -x "$asan_build/vhdkit" ]; then
  echo "WARNING: $asan_build/vhdkit does not exist or is not executable (run make asan first)"
fi

echo "vhdkit tests: $ntests to run, $jobs in parallel, timeout ${timeout_s}s, build $build${asan_build:+, asan build $asan_build}, logs in $logdir"

# ---- running one test --------------------------------------------------
resdir=$(mktemp -d "${TMPDIR:-/tmp}/vhdkit-run.XXXXXX") || exit 1

now_us () { local t=${EPOCHREALTIME//[!0-9]/}; echo $((10#$t)); }

# run_one I: runs in a background subshell; leaves "rc elapsed_us" in
# $resdir/I (written atomically) for the main loop to report.
run_one () {
  local i=$1 b=${t_build[$1]} log=${t_log[$1]} start rc tpid
  local -a envs cmd
  mkdir -p "$(dirname "$log")"
  envs=(VHDKIT="$b/vhdkit" VHDKIT_BUILD="$b" VHDKIT_CORPUS="$corpus")
  if [ "${t_asan[$i]}" = 1 ]; then
    # Reports also go to files, so that a test that discards vhdkit's stderr
    # cannot hide one; the main loop turns any such file into a failure.
    local san=$resdir/san.$i
    envs+=(ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:log_path=$san"
           UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$san")
  fi
  if [ "${t_asan[$i]}" = 2 ]; then
    local san=$resdir/san.$i
    envs+=(TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=$san")
  fi
  if [ "${t_kind[$i]}" = shell ]; then
    cmd=(bash "${t_cmd[$i]}")
  else
    cmd=("${t_cmd[$i]}")
  fi
  start=$(now_us)
  # timeout puts the test in its own process group and kills all of it;
  # forward our own termination to it so that an interrupted run leaves
  # nothing behind.
  env "${envs[@]}" timeout -k 10 "$timeout_s" "${cmd[@]}" \
    >"$log" 2>&1 </dev/null &
  tpid=$!
  trap 'kill -TERM "$tpid" 2>/dev/null' TERM INT
  while :; do
    wait "$tpid"; rc=$?
    kill -0 "$tpid" 2>/dev/null || break
  done
  echo "$rc $(( $(now_us) - start ))" >"$resdir/$i.tmp"
  mv "$resdir/$i.tmp" "$resdir/$i"
}

# ---- reporting ---------------------------------------------------------
npass=0 nfail=0 nskip=0
declare -A reported=()

secs () {   # microseconds -> "1.2s"
  local t=$((($1 + 50000) / 100000))
  printf '%d.%ds' $((t / 10)) $((t % 10))
}

skip_reason () {
  local line
  line=$(grep -E 'SKIP' "$1" 2>/dev/null | tail -n 1)
  [ -n "$line" ] || line=$(grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -n 1)
  case $line in
    *SKIPPED:*) line=${line#*SKIPPED:} ;;
    *SKIP:*)    line=${line#*SKIP:} ;;
  esac
  line=${line#"${line%%[![:space:]]*}"}
  printf '%s\n' "${line:-no reason given}"
}

report () {   # report I: print the result of test I (main process only)
  local i=$1 name=${t_name[$1]} log=${t_log[$1]} rc us why f
  read -r rc us <"$resdir/$i"
  why=
  if [ -s "$resdir/$i.err" ]; then
    { echo "---- run.sh:"; cat "$resdir/$i.err"; } >>"$log"
  fi
  if [ "${t_asan[$i]}" != 0 ]; then
    for f in "$resdir"/san."$i".*; do
      [ -e "$f" ] || continue
      { echo "---- sanitizer report (pid ${f##*.}):"; cat "$f"; } >>"$log"
      why="sanitizer report"
    done
  fi
  if [ -z "$why" ] && [ "$rc" -eq 0 ]; then
    echo "PASS $name ($(secs "$us"))"
    npass=$((npass + 1))
  elif [ -z "$why" ] && [ "$rc" -eq 77 ]; then
    echo "SKIP $name: $(skip_reason "$log")"
    nskip=$((nskip + 1))
  else
    if [ -n "$why" ]; then
      why="$why, exit $rc"
    elif { [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; } &&
         [ "$us" -ge $((timeout_s * 1000000)) ]; then
      why="TIMED OUT after ${timeout_s}s"
    elif [ "$rc" -gt 128 ] && [ "$rc" -lt 192 ]; then
      why="killed by SIG$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128)))"
    else
      why="exit $rc"
    fi
    echo "FAIL $name ($why, $(secs "$us")); last 30 lines of $log:"
    tail -n 30 "$log" | sed 's/^/    | /'
    nfail=$((nfail + 1))
  fi
}

collect () {   # report every finished test not yet reported, in index order
  local i
  for ((i = 0; i < launched; i++)); do
    if [ -n "${reported[$i]:-}" ] || [ ! -e "$resdir/$i" ]; then continue; fi
    reported[$i]=1
    report "$i"
    running=$((running - 1))
  done
}

# shellcheck disable=SC2317  # reached through the trap
interrupted () {
  trap - INT TERM
  echo "run.sh: interrupted; stopping running tests" >&2
  local p
  for p in $(jobs -p); do kill -TERM "$p" 2>/dev/null; done
  wait
  rm -rf "$resdir"
  # Tests cut short count as failed.
  echo "$npass passed, $((ntests - npass - nskip)) failed, $nskip skipped"
  exit 130
}
trap interrupted INT TERM

# ---- main loop ---------------------------------------------------------
launched=0 running=0
for ((i = 0; i < ntests; i++)); do
  while [ "$running" -ge "$jobs" ]; do
    wait -n 2>/dev/null || sleep 0.1
    collect
  done
  # The job's own stderr (e.g. bash's "Segmentation fault" notice) goes
  # beside the log; report appends it.
  run_one "$i" 2>"$resdir/$i.err" &
  launched=$((launched + 1)) running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n 2>/dev/null || sleep 0.1
  collect
done
wait
rm -rf "$resdir"

[ -n "$corpus_banner" ] && banner "$corpus_banner"
status=0
if [ $((npass + nfail)) -eq 0 ]; then
  echo "ERROR: no test ran (found $ntests, all skipped or none selected)"
  status=1
fi
[ "$nfail" -gt 0 ] && status=1
echo "$npass passed, $nfail failed, $nskip skipped"
exit $status
