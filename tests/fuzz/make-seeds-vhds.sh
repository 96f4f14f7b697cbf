#!/usr/bin/env bash
# Seeds for fuzz-vhds (see the comment at the top of fuzz-vhds.c):
#  - whole .vhds files of sets of several shapes made by the CLI: just
#    converted, with and without tracking, 1 to 4 snapshots, a snapshot
#    applied (a branch), deleted (merged away), deleted with a reference
#    point kept, records added and changed with set-info, optimized.  Most
#    are cut after copy A (the set still opens from it, VS-1) to keep the
#    inputs small; two keep both copies.  Their member files do not exist
#    in the fuzzer's folder, except base.vhdx: they feed the parser and
#    the validation, and the fuzzer's crossover with the patch seeds.
#  - patch lists against the fuzzer's own template (base <- middle <-
#    leaf, two records: members 0, 1, 2, a fixed layout), aimed at every
#    field, at the names the fuzzer's folder holds (j, d, s, l) and at
#    truncation.
#
#   tests/fuzz/make-seeds-vhds.sh OUTDIR VHDKIT
set -eu
out=$1 vhdkit=$2
here=$(cd "$(dirname "$0")" && pwd)
mut=$here/../set/vhdsmut.py
PY=/usr/bin/python3
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
mkdir -p "$out"

# new_set NAME [convert options]: $t/NAME/base.vhds from a written base.
new_set () {
  local d=$t/$1; shift
  mkdir -p "$d"
  "$vhdkit" create "$d/base.vhdx" --size 8M --block-size 1M
  head -c 64K /dev/urandom | "$vhdkit" write "$d/base.vhdx" --offset 1M
  "$vhdkit" set convert "$d/base.vhdx" "$@"
}
snap () { "$vhdkit" set snapshot "$t/$1/base.vhds" "${@:2}"; }
put () { head -c 4K /dev/urandom | "$vhdkit" write "$t/$1/base.vhds" --offset "$2"; }
# keep NAME [full]: the set file as a seed (cut after copy A unless full).
keep () {
  local s=$t/$1/base.vhds len
  if [ "${2:-}" = full ]; then
    cp "$s" "$out/set-$1-full.vhds"
  else
    len=$("$PY" "$mut" get "$s" A.length)
    head -c "$len" "$s" >"$out/set-$1.vhds"
  fi
}

new_set converted;                keep converted
new_set untracked --no-tracking;  snap untracked >/dev/null; put untracked 0
snap untracked >/dev/null;        keep untracked
new_set one;   snap one >/dev/null; put one 2M; keep one
new_set two;   snap two >/dev/null; put two 2M; snap two >/dev/null; put two 4M
keep two; keep two full
new_set four
for i in 1 2 3 4; do snap four >/dev/null; put four "${i}M"; done
keep four
new_set ids
snap ids --id 00000000-0000-0000-0000-000000000001 >/dev/null
snap ids --id ffffffff-ffff-ffff-ffff-ffffffffffff >/dev/null
keep ids
new_set applied
a=$(snap applied); put applied 2M; snap applied >/dev/null; put applied 3M
"$vhdkit" set apply "$t/applied/base.vhds" "$a"; put applied 5M
keep applied; keep applied full
new_set branches
a=$(snap branches); put branches 2M; snap branches >/dev/null
"$vhdkit" set apply "$t/branches/base.vhds" "$a"; put branches 6M
snap branches >/dev/null; put branches 7M
keep branches
new_set deleted
a=$(snap deleted); put deleted 2M; snap deleted >/dev/null; put deleted 3M
"$vhdkit" set delete "$t/deleted/base.vhds" "$a" --no-progress
keep deleted
new_set reference
a=$(snap reference); put reference 2M; snap reference >/dev/null
"$vhdkit" set delete "$t/reference/base.vhds" "$a" --persist-reference --no-progress
keep reference
new_set setinfo
a=$(snap setinfo); put setinfo 2M; snap setinfo >/dev/null
"$vhdkit" set set-info "$t/setinfo/base.vhds" --id "$a" --creation-time 2001-02-03T04:05:06Z
keep setinfo
new_set optimized
a=$(snap optimized); put optimized 2M; b=$(snap optimized); put optimized 3M
"$vhdkit" set delete "$t/optimized/base.vhds" "$b" --no-progress
"$vhdkit" set optimize "$t/optimized/base.vhds" --no-progress
keep optimized

# Patch lists: [u32 offset][u8 length][bytes]; offset bit 31 = copy B.
"$PY" - "$out" <<'EOF'
import os, struct, sys
out = sys.argv[1]
B = 0x80000000
NONE = b"\xff\xff\xff\xff"
def u32(v): return struct.pack("<I", v)
def p(off, data): return struct.pack("<IB", off, len(data)) + data
def both(off, data): return p(off, data) + p(B | off, data)
def cut(off): return struct.pack("<IB", off, 0)
def member(i, field): return 128 + 288 * i + {"parent": 0, "name": 32}[field]
def record(j, off, n_members=3): return 128 + 288 * n_members + 64 * j + off
name = lambda s: s.encode() + b"\0"
seeds = {
    "template": b"",
    "leaf-0": both(36, u32(0)),
    "leaf-1": both(36, u32(1)),
    "leaf-3": both(36, u32(3)),
    "loop": both(member(1, "parent"), u32(2)),
    "two-roots": both(member(1, "parent"), NONE),
    "name-j": both(member(1, "name"), name("j")),
    "name-d": both(member(2, "name"), name("d")),
    "name-s": both(member(0, "name"), name("s")),
    "name-l": both(member(2, "name"), name("l")),
    "name-slash": both(member(1, "name"), name("x/y")),
    "name-dotdot": both(member(1, "name"), name("..")),
    "name-set": both(member(0, "name"), name("base.vhds")),
    "name-rct": both(member(0, "name"), name("base.vhdx.rct")),
    "reference-point": both(record(0, 24), NONE),
    "record-no-rct": both(record(1, 28), u32(0)),
    "record-gen-0": both(record(0, 48), u32(0)),
    "pending-merge": both(56, u32(1) + u32(1) + u32(0)),
    "pending-bad": both(56, u32(1) + u32(2) + u32(0)),
    # A fourth member, "s" (a link to base.vhdx), under the leaf, as leaf;
    # no records (they would have to move past it).
    "four-members": both(24, u32(128 + 288 * 4) + u32(4) + u32(0) + u32(3))
                    + both(992, (u32(2) + bytes(28) + name("s")).ljust(255, b"\0"))
                    + both(992 + 255, bytes(33)),
    # A third record: a reference point without an RCT ID.
    "three-records": both(24, u32(128 + 288 * 3 + 64 * 3)) + both(32, u32(3))
                     + both(record(2, 0), bytes(range(1, 17)) + struct.pack("<Q", 5)
                            + NONE + u32(0)),
    # Counts over the limits with a length that agrees with them, and a
    # name of 256 bytes without NUL (two patches: a patch is at most 255).
    "members-1025": both(24, u32(128 + 288 * 1025 + 64 * 2) + u32(1025)),
    "records-4097": both(24, u32(128 + 288 * 3 + 64 * 4097)) + both(32, u32(4097)),
    "name-unterminated": both(member(1, "name"), b"a" * 255) + both(member(1, "name") + 255, b"a"),
    "cut-0": cut(0),
    "cut-127": cut(127),
    "cut-member": cut(128 + 288 + 100),
    "cut-1M": cut(B),
    "cut-mid-B": cut(B | 500),
    "A-raw-crc-bad-magic": p(127, b"\1") + p(0, b"VHDKSETX"),
    "B-higher-seq": p(B | 16, struct.pack("<Q", 99)),
    "A-higher-seq-bad": p(16, struct.pack("<Q", 99)) + p(36, u32(7)),
    "far-patch": p(0x40000000 | 0x10000, b"junk") + p(B | 0x40000000 | 0xfff00, b"x"),
}
for k, v in seeds.items():
    with open(os.path.join(out, "patch-" + k), "wb") as f:
        f.write(v)
EOF
