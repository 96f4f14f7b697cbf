# shellcheck shell=bash
# Helpers shared by the corpus, interop and bad-input tests.
# Source it after lib.sh:   . "$(dirname "$0")/../interop/peer-lib.sh"
#
# The reference readers are qemu-img (fixed/dynamic VHDX) and libvhdi through
# Debian's python3 (all VHDX types, with explicit parents).  Expected content
# is kept as a plain raw file ($T/...raw) that every write is mirrored into
# with dd, so that "vhdkit read", "qemu-img convert" and libvhdi are each
# compared with an independent truth, not merely with one another.

export MUT VHDI_READ
MUT=$TOP/tests/badinput/vhdxmut.py
VHDI_READ=$TOP/tests/interop/vhdi_read.py

# The binary under test must exist; a missing build is a failure, not a skip.
need_vhdkit () {
  [ -x "$VHDKIT" ] || fail "vhdkit binary '$VHDKIT' is not built (run make)"
}

# Run vhdkit; on failure, show the command and its stderr.
vk () {
  local err=$T/vk.err rc=0
  "$VHDKIT" "$@" 2>"$err" || rc=$?
  if [ "$rc" -ne 0 ]; then
    fail "'vhdkit $*' exited $rc: $(cat "$err")"
  fi
}

# sha256 of a file / of standard input (fast: see sha256.py).
file_sha () { "$PY" "$TOP/tests/interop/sha256.py" "$1"; }
sha_stdin () { "$PY" "$TOP/tests/interop/sha256.py"; }

# info_get FILE KEY: one key of "vhdkit info --json FILE".
info_get () {
  local out=$T/info.json rc=0
  "$VHDKIT" info --json "$1" >"$out" 2>"$T/info.err" || rc=$?
  [ "$rc" -eq 0 ] || fail "'vhdkit info --json $1' exited $rc: $(cat "$T/info.err")"
  "$PY" - "$out" "$2" <<'EOF' || fail "vhdkit info --json $1: no usable key '$2' in: $(cat "$out")"
import json, sys
d = json.load(open(sys.argv[1]))
v = d[sys.argv[2]]
print("" if v is None else v)
EOF
}

# expect_info FILE KEY=VALUE...: compare keys of "vhdkit info --json FILE"
# (numbers as integers; GUIDs case-insensitively, with or without braces;
# VALUE */name matches a path ending in /name).
expect_info () {
  local f=$1 out=$T/info.json rc=0
  shift
  "$VHDKIT" info --json "$f" >"$out" 2>"$T/info.err" || rc=$?
  [ "$rc" -eq 0 ] || fail "'vhdkit info --json $f' exited $rc: $(cat "$T/info.err")"
  "$PY" - "$out" "$f" "$@" <<'PYEOF' || fail "vhdkit info --json $(basename "$f") is wrong (see above); it said: $(cat "$out")"
import json, sys
d = json.load(open(sys.argv[1]))
bad = 0
def norm(v):
    s = "" if v is None else str(v)
    return s.strip().strip("{}").lower()
for a in sys.argv[3:]:
    k, _, want = a.partition("=")
    if k not in d:
        print("FAIL: info --json %s: key %s missing" % (sys.argv[2], k), file=sys.stderr)
        bad = 1
        continue
    got = d[k]
    if want.startswith("*/"):
        ok = isinstance(got, str) and got.replace("\\", "/").endswith(want[1:])
    else:
        ok = norm(got) == norm(want)
    if not ok:
        print("FAIL: info --json %s: %s is %r, expected %r" % (sys.argv[2], k, got, want),
              file=sys.stderr)
        bad = 1
sys.exit(bad)
PYEOF
}

# qemu_sha IMG: sha256 of the virtual disk as qemu-img reads it.
qemu_sha () {
  local raw=$T/qemu-out.raw
  rm -f "$raw"
  qemu-img convert -f vhdx -O raw "$1" "$raw" 2>"$T/qemu.err" ||
    fail "qemu-img convert -f vhdx -O raw $1 failed: $(cat "$T/qemu.err")"
  file_sha "$raw"
  rm -f "$raw"
}

# qemu_check IMG: qemu-img check must find no problem.
qemu_check () {
  local out=$T/qemu-check.out
  qemu-img check -f vhdx "$1" >"$out" 2>&1 ||
    fail "qemu-img check -f vhdx $(basename "$1") failed: $(cat "$out")"
}

# vhdi_sha IMG [PARENT [GRANDPARENT ...]]: sha256 as libvhdi reads it.
vhdi_sha () {
  "$PY" "$VHDI_READ" sha "$@" 2>"$T/vhdi.err" ||
    fail "libvhdi could not read $1: $(cat "$T/vhdi.err")"
}

# mk_expect FILE SIZE: an all-zero expected-content file.
mk_expect () { rm -f "$1"; truncate -s "$2" "$1"; }

# rand_write IMG EXPECT OFFSET LENGTH: write random bytes with vhdkit and
# mirror them into the expected raw content.
rand_write () {
  local img=$1 exp=$2 off=$3 len=$4 data=$T/write.data
  head -c "$len" /dev/urandom >"$data"
  vk write "$img" --offset "$off" --length "$len" <"$data"
  dd if="$data" of="$exp" bs=1M seek="$off" oflag=seek_bytes conv=notrunc status=none
}

# zero_write IMG EXPECT OFFSET LENGTH [--zero|--discard]
zero_write () {
  local img=$1 exp=$2 off=$3 len=$4 how=${5:---zero}
  vk write "$img" --offset "$off" --length "$len" "$how" </dev/null
  dd if=/dev/zero of="$exp" bs=1M seek="$off" count="$len" \
     oflag=seek_bytes iflag=count_bytes conv=notrunc status=none
}

# same LABEL GOT WANT
same () {
  [ "$2" = "$3" ] || fail "$1: sha256 $2, expected $3"
}

# vk_sha IMG: sha256 of the disk as "vhdkit read" gives it; a failed read
# fails the test (use it in an assignment: x=$(vk_sha img)).
vk_sha () {
  local s
  s=$("$VHDKIT" read "$1" | sha_stdin) || fail "'vhdkit read $1' failed (its stderr is above)"
  echo "$s"
}

# expect_content IMG EXPECT [qemu] [PARENTS...]: vhdkit and libvhdi (given
# the parents, nearest first) and, with "qemu", qemu-img (check + convert)
# all read exactly the expected raw content.
expect_content () {
  local img=$1 want got name
  name=$(basename "$1")
  want=$(file_sha "$2"); shift 2
  local use_qemu=0
  if [ "${1:-}" = qemu ]; then use_qemu=1; shift; fi
  got=$(vk_sha "$img");             same "vhdkit read $name" "$got" "$want"
  got=$(vhdi_sha "$img" "$@");      same "libvhdi read $name" "$got" "$want"
  if [ $use_qemu -eq 1 ]; then
    qemu_check "$img"
    got=$(qemu_sha "$img");         same "qemu-img convert $name" "$got" "$want"
  fi
}

# to_bytes 65M+512 -> 68157952 (K/M/G suffixes, sums)
to_bytes () {
  local e=$1
  e=${e//K/*1024}; e=${e//M/*1048576}; e=${e//G/*1073741824}
  echo $(( e ))
}

# try CMD...: run CMD in a subshell with errexit in force (so that a table
# of cases can go on after one fails) and leave its status in $try_rc.
# Call it as a plain statement, never under if/||/&& (bash would switch
# errexit off inside).  A skip (77) inside skips the whole test.
try_rc=0
try () {
  set +e
  ( set -e; "$@" )
  try_rc=$?
  set -e
  [ "$try_rc" -ne 77 ] || exit 77
}

# write_pattern IMG EXPECT SIZE BLOCK [SECTOR]: the standard set of writes
# (mirrored into EXPECT): first sector, a write across the first block
# boundary, one spanning several blocks, a zeroed and a discarded range
# over data, the last block's start and the last sector.
write_pattern () {
  local img=$1 exp=$2 size=$3 bs=$4 ss=${5:-512} M=1048576
  rand_write "$img" "$exp" 0 "$ss"
  if [ "$size" -gt "$bs" ]; then
    rand_write "$img" "$exp" $((bs - 3*ss)) $((8*ss))          # block 0 -> 1
  fi
  if [ "$size" -gt $((4*M)) ]; then
    rand_write "$img" "$exp" $((M + 7*ss)) $((2*M + 3*ss))     # several MiB, unaligned to blocks
    zero_write "$img" "$exp" $((M + 64*ss)) $((16*ss)) --zero  # zero inside data
  fi
  if [ "$size" -gt $((2*bs + M)) ]; then
    rand_write "$img" "$exp" $((2*bs)) "$M"
    zero_write "$img" "$exp" $((2*bs)) "$M" --discard           # discard reads as zeros
  fi
  local last=$(( (size - 1) / bs * bs ))                         # start of the last block
  if [ "$last" -gt 0 ] && [ $((size - last)) -ge $((2*ss)) ]; then
    rand_write "$img" "$exp" "$last" $((2*ss))
  fi
  rand_write "$img" "$exp" $((size - ss)) "$ss"                 # last sector
}
