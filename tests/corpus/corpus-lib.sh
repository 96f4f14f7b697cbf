# shellcheck shell=bash
# Helpers for the corpus tests (real VHDX files written by Hyper-V, Windows
# and QEMU; /work/shared/corpus/README.md lists their content hashes).
# Source it after lib.sh:   . "$(dirname "$0")/corpus-lib.sh"
#
# vhdkit never opens the shared corpus itself: it reads private copies in
# $T (decompressed where the corpus stores them compressed).  Running as
# root, nothing but our own care would stop a buggy read-only open from
# writing into the shared files, so each test also checks afterwards that
# the original is still byte-for-byte what corpus/SHA256SUMS says.

. "$TOP/tests/interop/peer-lib.sh"

[ -d "$VHDKIT_CORPUS" ] ||
  skip "corpus not found at VHDKIT_CORPUS=$VHDKIT_CORPUS — foreign-image tests did NOT run"
need_vhdkit

# corpus_copy REL: print the path of a private, read-only copy of corpus
# file REL in $T (decompressed if it is .gz/.xz/.bz2).
corpus_copy () {
  local rel=$1 p dst
  # (errexit is off inside command substitutions: pass a skip/fail on.)
  p=$(corpus_file "$rel") || exit $?
  case "$p" in
    "$T"/*) dst=$p ;;
    *) dst=$T/$(basename "$p"); [ -e "$dst" ] || cp "$p" "$dst" || exit 1 ;;
  esac
  chmod a-w "$dst"
  printf '%s\n' "$dst"
}

# corpus_intact REL: the shared corpus file still has its recorded sha256.
corpus_intact () {
  local rel=$1 want got
  want=$(awk -v f="./$rel" '$2 == f { print $1 }' "$VHDKIT_CORPUS/SHA256SUMS")
  [ -n "$want" ] || fail "corpus/SHA256SUMS has no line for ./$rel"
  got=$(file_sha "$VHDKIT_CORPUS/$rel")
  [ "$got" = "$want" ] || fail "corpus file $rel was MODIFIED (sha256 $got, SHA256SUMS says $want)"
}

# check_vhdx FILE HASH TYPE VSIZE BLOCK LSS PSS [KEY=VALUE...]
#   info --json reports the geometry (TYPE 2 fixed, 3 dynamic, 4
#   differencing) and any extra KEY=VALUE; check passes; read gives HASH;
#   the file is unchanged afterwards.
check_vhdx () {
  local f=$1 hash=$2 type=$3 vsize=$4 bs=$5 lss=$6 pss=$7
  shift 7
  local name before after got rc=0
  name=$(basename "$f")
  before=$(file_sha "$f")

  expect_info "$f" Format=3 Type="$type" MaxInternalSize="$vsize" \
    BlockSize="$bs" LogicalSectorSize="$lss" PhysicalSectorSize="$pss" \
    FileSize="$(stat -c %s "$f")" "$@"

  "$VHDKIT" check "$f" >"$T/check.out" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || fail "'vhdkit check $name' exited $rc, expected 0 (valid): $(cat "$T/check.out")"

  got=$(vk_sha "$f")
  same "vhdkit read $name (virtual content)" "$got" "$hash"

  after=$(file_sha "$f")
  [ "$before" = "$after" ] || fail "vhdkit MODIFIED $name while only reading it (sha256 $before -> $after)"
  info "$name: info, check and content OK"
}
