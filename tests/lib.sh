# Common helpers for shell tests.  Source it first: . "$(dirname "$0")/../lib.sh"
#
# Contract with tests/run.sh:
#   exit 0  = passed, exit 77 = skipped (say why on stderr, loudly),
#   anything else = failed.
# Environment (set by tests/run.sh, with defaults for running a test alone):
#   VHDKIT         the vhdkit binary under test
#   VHDKIT_BUILD   the build directory (unit binaries, fuzz targets)
#   VHDKIT_CORPUS  the read-only corpus of foreign images
#   T              a fresh temporary directory, removed on exit
set -eu
set -o pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${VHDKIT_BUILD:=$TOP/build}"
: "${VHDKIT:=$VHDKIT_BUILD/vhdkit}"
: "${VHDKIT_CORPUS:=$TOP/../shared/corpus}"
# The CLI with the io simulator linked in (docs/IO-SIM.md): the only
# vhdkit that VHDKIT_SIM affects.  Tests that simulate faults or crashes
# call use_sim_cli, which makes $VHDKIT this one.
VHDKIT_SIMCLI=$VHDKIT_BUILD/tests/vhdkit-sim
export VHDKIT VHDKIT_BUILD VHDKIT_CORPUS VHDKIT_SIMCLI
use_sim_cli () {
  [ -x "$VHDKIT_SIMCLI" ] || fail "$VHDKIT_SIMCLI is missing (make all builds it)"
  VHDKIT=$VHDKIT_SIMCLI
}
# Debian's python3 carries python3-libvhdi; another python3 may come first.
PY=/usr/bin/python3

T=$(mktemp -d "${TMPDIR:-/tmp}/vhdkit-test.XXXXXX")
trap 'rm -rf "$T"' EXIT

fail () { echo "FAIL: $*" >&2; exit 1; }
skip () { echo "SKIPPED: $*" >&2; exit 77; }
info () { echo "# $*" >&2; }

# sweep_points N: the points 1..N (sync points, or Nth I/O) that a crash
# or fault sweep visits, one per line.  VHDKIT_SWEEP=full (make soak,
# make sweep) visits every point.  Otherwise at most VHDKIT_SWEEP_MAX
# (default 8): the first two, the last one, and the rest spread evenly
# from an offset drawn from VHDKIT_SWEEP_SEED (random unless given; the
# log names it), so that successive runs of make test cover different
# points.  To rerun a failure exactly, set VHDKIT_SWEEP_SEED to the seed
# its log names, or VHDKIT_SWEEP=full.
if [ -z "${VHDKIT_SWEEP_SEED:-}" ]; then
  VHDKIT_SWEEP_SEED=$(( $(od -An -N2 -tu2 /dev/urandom) ))
fi
sweep_points () {
  local n=$1 max=${VHDKIT_SWEEP_MAX:-8}
  if [ "${VHDKIT_SWEEP:-}" = full ] || [ "$n" -le "$max" ]; then
    seq 1 "$n"
    return
  fi
  echo "# sweep: $max of $n points (VHDKIT_SWEEP_SEED=$VHDKIT_SWEEP_SEED; VHDKIT_SWEEP=full for every point)" >&2
  /usr/bin/python3 - "$n" "$max" "$VHDKIT_SWEEP_SEED" <<'PY'
import random, sys
n, m, seed = map(int, sys.argv[1:4])
rest = list(range(3, n))        # 1, 2 and n are always visited
k = max(m - 3, 1)
off = random.Random(seed * 1000003 + n).random()
step = len(rest) / k
pick = sorted({rest[int((i + off) * step)] for i in range(k)})
print("\n".join(map(str, [1, 2] + pick + [n])))
PY
}

# A tool the test needs: its absence is a failure (make test installs it).
need () {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || fail "required tool '$c' is not installed (run scripts/install-deps.sh)"
  done
}

# corpus_file REL: print the path of corpus file REL, decompressed into $T
# if it ends in .gz/.xz/.bz2.  A missing corpus skips the test loudly.
corpus_file () {
  local rel=$1 src dst
  if [ ! -d "$VHDKIT_CORPUS" ]; then
    skip "corpus not found at VHDKIT_CORPUS=$VHDKIT_CORPUS — foreign-image tests did NOT run"
  fi
  src=$VHDKIT_CORPUS/$rel
  [ -e "$src" ] || fail "corpus file $src is missing"
  case "$src" in
    *.gz)  dst=$T/$(basename "${rel%.gz}");  [ -e "$dst" ] || gzip -dc "$src" > "$dst" ;;
    *.xz)  dst=$T/$(basename "${rel%.xz}");  [ -e "$dst" ] || xz -dc "$src" > "$dst" ;;
    *.bz2) dst=$T/$(basename "${rel%.bz2}"); [ -e "$dst" ] || bzip2 -dc "$src" > "$dst" ;;
    *)     dst=$src ;;
  esac
  printf '%s\n' "$dst"
}

# expect_fail CODE CMD...: CMD must fail and its stderr must name return
# code CODE as "(CODE)".  Prints the stderr.
expect_fail () {
  local code=$1; shift
  local err=$T/expect_fail.err
  if "$@" >/dev/null 2>"$err"; then
    fail "expected '$*' to fail with $code, but it succeeded"
  fi
  grep -q "($code)" "$err" || fail "expected '$*' to fail with ($code), got: $(cat "$err")"
  cat "$err" >&2
}

# The sha256 of the whole virtual disk as vhdkit reads it.
vhdkit_sha () {
  "$VHDKIT" read "$1" | sha256sum | cut -d' ' -f1
}
