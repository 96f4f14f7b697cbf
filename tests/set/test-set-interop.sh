#!/usr/bin/env bash
# VHD Sets made and changed by the vhdkit CLI stay sets of standard VHDX
# files that other readers agree with (docs/FORMAT-vhds.md).
#
# Four shapes: base dynamic / fixed, 512 / 4096-byte logical sectors,
# tracked (default and 4 KiB granularity) and untracked; one is converted
# with --output under another name.  Each: random writes into the base,
# `set convert`, four snapshots (one with --id) with random writes, zeroes
# and discards between them, a delete that merges (S2), an apply (S3),
# writes, the delete of S3 (its image, with two children, stays), a delete
# with --persist-reference (S4; untracked: a plain delete), a stray file
# of the set's name pattern and `set optimize` (which must merge away S3's
# image, left with one child, the leaf), writes.  Checked:
#   - after every operation, the leaf (`vhdkit read SET.vhds`) reads the
#     independently kept expected content, and every snapshot
#     (`vhdkit read SET.vhds@ID`) reads exactly what the leaf read when it
#     was taken (sha256 kept); a snapshot refuses writes;
#   - after the snapshots and after each structural operation: libvhdi
#     (pyvhdi, parents chained with set_parent) reads the leaf's chain
#     (followed through the files' own parent locators, which must be the
#     start of AllPaths) and every snapshot's chain (its SnapshotPath and
#     ParentPathsList, which must agree with the locators) to the same
#     sha256 as vhdkit; every member passes `vhdkit check`; the root passes
#     `qemu-img check` when qemu opens it (not 4Kn: qemu 7.2 cannot); the
#     .avhdx files in the folder are exactly those AllPaths names;
#     `vhdkit check` and `vhdkit info` work on SET.vhds and SET.vhds@ID;
#   - change tracking between snapshots (`vhdkit changes SET.vhds
#     --limit-id Si --target-snapshot-id Sj --all`) reports every range
#     written between them, also across the merge, after the apply and
#     for the reference point.
# Work on tmpfs unless told otherwise: set operations are bound by fsync.
[ -n "${TMPDIR:-}" ] || { [ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm; } || true
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../interop/peer-lib.sh"
need_vhdkit
need qemu-img
M=1048576

"$VHDKIT" set --help >/dev/null 2>&1 ||
  fail "'vhdkit set --help' fails: this vhdkit has no VHD Sets (the verb 'set')"
"$PY" -c 'import pyvhdi' 2>/dev/null || fail "python3-libvhdi (pyvhdi) is not installed"

# ---- the Python side: structure checks and libvhdi ---------------------
SETPY=$T/setpy.py
cat > "$SETPY" <<'PYEOF'
"""Helpers of tests/set/test-set-interop.sh.

  audit SET           check the set's files against `vhdkit set info` and
                      `set snapshots --parents` (see the test's header), read
                      every chain with libvhdi; prints "leaf SHA",
                      "snap ID SHA" and "ref ID" lines, "root PATH" and
                      "members PATH..." (every member, for vhdkit check)
  ids SET             the SnapshotIdList, one per line (normalized)
  rctid SET ID        the record's ResilientChangeTrackingId ("" if none)
  covers RANGES LEDGER  every "OFF LEN" of LEDGER lies inside the union of
                      the "OFF LEN" ranges of RANGES (vhdkit changes --all)
  diff A B            "OFF LEN" of the 4 KiB pieces that differ in A and B
"""
import hashlib, json, os, re, subprocess, sys
import pyvhdi

VHDKIT = os.environ["VHDKIT"]
errors = []


def err(msg):
    errors.append(msg)
    print("FAIL: " + msg, file=sys.stderr)


def norm_id(s):
    return (s or "").strip().strip("{}").lower()


def vk_json(*args):
    p = subprocess.run([VHDKIT] + list(args), capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit("FAIL: 'vhdkit %s' exited %d: %s" % (" ".join(args), p.returncode, p.stderr.strip()))
    try:
        return json.loads(p.stdout)
    except ValueError as e:
        raise SystemExit("FAIL: 'vhdkit %s' printed no JSON (%s): %r" % (" ".join(args), e, p.stdout[:500]))


def key(d, *names):
    """d[name] for the first of NAMES present, else the first key holding
    names[-1] case-insensitively (e.g. 'leaf')."""
    for n in names:
        if n in d:
            return d[n]
    for k in d:
        if names[-1].lower() in k.lower():
            return d[k]
    raise SystemExit("FAIL: no key %s in %s" % ("/".join(names), json.dumps(d)[:500]))


def records(setp, want_parents=True):
    args = ["set", "snapshots", setp, "--json"] + (["--parents"] if want_parents else [])
    j = vk_json(*args)
    if isinstance(j, dict):
        if "SnapshotId" in j:
            j = [j]
        else:
            lists = [v for v in j.values() if isinstance(v, list)]
            j = lists[0] if lists else []
    return j


def resolve(p, setdir):
    if not p:
        return p
    if not os.path.isabs(p) and not os.path.exists(p):
        p = os.path.join(setdir, p)
    return os.path.realpath(p)


def parent_of(path):
    d = vk_json("info", "--json", path)
    p = d.get("ParentPath") or ""
    return resolve(p, os.path.dirname(path)) if p else ""


def chain_of(path):
    """PATH, its parent, ... to the root, through the files' locators."""
    out = [path]
    while True:
        p = parent_of(out[-1])
        if not p:
            return out
        if p in out or len(out) > 1100:
            raise SystemExit("FAIL: parent loop from %s" % path)
        out.append(p)


def vhdi_sha(chain):
    files = []
    for p in chain:
        f = pyvhdi.file()
        f.open(p)
        files.append(f)
    for i in range(len(files) - 2, -1, -1):
        files[i].set_parent(files[i + 1])
    f = files[0]
    size, off, h = f.get_media_size(), 0, hashlib.sha256()
    while off < size:
        n = min(8 << 20, size - off)
        data = f.read_buffer_at_offset(n, off)
        if data is None or len(data) != n:
            raise SystemExit("FAIL: libvhdi short read at %d in %s" % (off, chain[0]))
        h.update(data)
        off += n
    for x in files:
        x.close()
    return h.hexdigest()


def audit(setp):
    setp = os.path.realpath(setp)
    setdir = os.path.dirname(setp)
    info = vk_json("set", "info", setp, "--json")
    allp = [resolve(p, setdir) for p in key(info, "AllPaths")]
    leaf = resolve(key(info, "LeafPath", "Leaf", "leaf"), setdir)
    ids = [norm_id(x) for x in key(info, "SnapshotIdList")]
    for p in allp:
        if not os.path.exists(p):
            err("AllPaths names %s, which does not exist" % p)
    if len(set(allp)) != len(allp):
        err("AllPaths repeats a file: %s" % allp)
    lchain = chain_of(leaf)
    if allp[:len(lchain)] != lchain:
        err("AllPaths %s does not start with the leaf's chain %s" % (allp, lchain))
    # Every .avhdx in the folder is named by AllPaths, and the reverse.
    on_disk = {os.path.realpath(os.path.join(setdir, n)) for n in os.listdir(setdir) if n.endswith(".avhdx")}
    named = {p for p in allp if p.endswith(".avhdx")}
    if on_disk != named:
        err("the folder's .avhdx files %s are not AllPaths' %s"
            % (sorted(map(os.path.basename, on_disk)), sorted(map(os.path.basename, named))))
    recs = records(setp)
    if [norm_id(r["SnapshotId"]) for r in recs] != ids:
        err("set snapshots lists %s, set info SnapshotIdList %s" % ([r["SnapshotId"] for r in recs], ids))
    members = list(lchain)
    roots = {lchain[-1]}
    print("leaf %s" % vhdi_sha(lchain))
    for r in recs:
        sid = norm_id(r["SnapshotId"])
        sp = r.get("SnapshotPath") or ""
        if not sp:
            print("ref %s" % sid)
            continue
        sp = resolve(sp, setdir)
        given = [sp] + [resolve(p, setdir) for p in (r.get("ParentPathsList") or [])]
        real = chain_of(sp)
        if given != real:
            err("snapshot %s: SnapshotPath + ParentPathsList %s, but the files' parent locators give %s"
                % (sid, given, real))
        if sp == leaf:
            err("snapshot %s names the leaf %s" % (sid, sp))
        for p in given:
            if p not in allp:
                err("snapshot %s: %s is not in AllPaths" % (sid, p))
        members += [p for p in given if p not in members]
        roots.add(real[-1])
        print("snap %s %s" % (sid, vhdi_sha(given)))
    if len(roots) != 1:
        err("the chains end in different roots: %s" % sorted(roots))
    for p in allp:
        if p not in members:
            members.append(p)
    print("root %s" % lchain[-1])
    print("members %s" % " ".join(members))


def rctid(setp, sid):
    for r in records(setp, False):
        if norm_id(r["SnapshotId"]) == norm_id(sid):
            print(r.get("ResilientChangeTrackingId") or "")
            return
    raise SystemExit("FAIL: no record %s" % sid)


def covers(rfile, lfile):
    rs = []
    for line in open(rfile):
        f = line.split()
        if len(f) >= 2 and f[0].isdigit():
            rs.append((int(f[0]), int(f[1])))
    rs.sort()
    merged = []
    for o, n in rs:
        if merged and o <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], o + n)
        else:
            merged.append([o, o + n])
    import bisect
    starts = [a for a, b in merged]
    missed = []
    for line in open(lfile):
        f = line.split()
        if len(f) < 2:
            continue
        o, n = int(f[0]), int(f[1])
        if n == 0:
            continue
        i = bisect.bisect_right(starts, o) - 1
        if i < 0 or o + n > merged[i][1]:
            missed.append((o, n))
    if missed:
        raise SystemExit("FAIL: %d changed ranges not reported, first %s; reported %d ranges: %s"
                         % (len(missed), missed[:5], len(merged), merged[:20]))


def diff(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        off = 0
        while True:
            x, y = fa.read(4 << 20), fb.read(4 << 20)
            if not x and not y:
                break
            if x != y:
                for i in range(0, max(len(x), len(y)), 4096):
                    if x[i:i + 4096] != y[i:i + 4096]:
                        print(off + i, 4096)
            off += 4 << 20


def main(a):
    if a[1] == "audit":
        audit(a[2])
    elif a[1] == "ids":
        for x in key(vk_json("set", "info", a[2], "--json"), "SnapshotIdList"):
            print(norm_id(x))
    elif a[1] == "rctid":
        rctid(a[2], a[3])
    elif a[1] == "covers":
        covers(a[2], a[3])
    elif a[1] == "diff":
        diff(a[2], a[3])
    return 1 if errors else 0


sys.exit(main(sys.argv))
PYEOF

# ---- helpers (all state in the shape's subshell) ------------------------
# snap_ids: live snapshots in order; listed: the IDs SnapshotIdList must
# give (reference points stay listed); snap_sha[ID]: the leaf's sha256 when
# ID was taken; SET, EXP (expected leaf content), SS (sector size).
norm () { local s=${1#\{}; s=${s%\}}; printf '%s\n' "${s,,}"; }

# verify LABEL: leaf and every live snapshot read as they must (vhdkit).
verify () {
  local id got want
  want=$(file_sha "$EXP")
  got=$(vk_sha "$SET");              same "$SHAPE $1: vhdkit read of the leaf" "$got" "$want"
  "$PY" "$SETPY" ids "$SET" >"$T/ids" || fail "$SHAPE $1: set info failed"
  [ "$(cat "$T/ids")" = "$(printf '%s\n' "${listed[@]}")" ] ||
    fail "$SHAPE $1: SnapshotIdList is $(tr '\n' ' ' <"$T/ids"), expected ${listed[*]}"
  for id in "${snap_ids[@]}"; do
    got=$(vk_sha "$SET@$id");       same "$SHAPE $1: vhdkit read of $SET@$id" "$got" "${snap_sha[$id]}"
  done
}

# audit LABEL: libvhdi, vhdkit check, qemu-img check, structure.
audit () {
  local kind a b got n=0 leafsha=
  "$PY" "$SETPY" audit "$SET" >"$T/audit" 2>"$T/audit.err" ||
    fail "$SHAPE $1: set audit failed: $(cat "$T/audit.err")"
  while read -r kind a b; do
    case $kind in
      leaf) leafsha=$a; same "$SHAPE $1: libvhdi read of the leaf's chain" "$a" "$(file_sha "$EXP")" ;;
      snap) n=$((n + 1))
            [ -n "${snap_sha[$a]:-}" ] || fail "$SHAPE $1: set snapshots lists $a, which is not a live snapshot"
            same "$SHAPE $1: libvhdi read of snapshot $a's chain" "$b" "${snap_sha[$a]}" ;;
      ref)  [ -n "${ref_ids[$a]:-}" ] || fail "$SHAPE $1: $a is a reference point, expected a snapshot" ;;
      root) if qemu-img info -f vhdx "$a" >/dev/null 2>&1; then
              qemu_check "$a"
            elif [ "$SS" = 512 ]; then
              fail "$SHAPE $1: qemu-img cannot open the root $a: $(qemu-img info -f vhdx "$a" 2>&1)"
            fi ;;
      members)
            for got in $a $b; do
              "$VHDKIT" check "$got" >"$T/check.out" 2>&1 ||
                fail "$SHAPE $1: vhdkit check $(basename "$got") failed: $(cat "$T/check.out")"
            done ;;
    esac
  done <"$T/audit"
  [ -n "$leafsha" ] || fail "$SHAPE $1: the audit printed no leaf"
  # The disk verbs on the set itself: the leaf and each snapshot.
  for got in "$SET" "${snap_ids[@]/#/$SET@}"; do
    "$VHDKIT" check "$got" >"$T/check.out" 2>&1 ||
      fail "$SHAPE $1: vhdkit check $(basename "$got") failed: $(cat "$T/check.out")"
    [ "$(info_get "$got" MaxInternalSize)" = "$SIZE" ] ||
      fail "$SHAPE $1: vhdkit info $(basename "$got"): MaxInternalSize is not $SIZE"
  done
  [ "$n" -eq ${#snap_ids[@]} ] || fail "$SHAPE $1: libvhdi read $n snapshot chains, expected ${#snap_ids[@]}"
}

# w OFF LEN [--zero|--discard]: write into the leaf, mirrored into EXP and
# logged in the ledger of the current interval.
w () {
  case ${3:-} in
    '') rand_write "$SET" "$EXP" "$1" "$2" ;;
    *)  zero_write "$SET" "$EXP" "$1" "$2" "$3" ;;
  esac
  echo "$1 $2" >> "$LEDGER"
}

# snapshot [GUID]: take a snapshot, remember its content; its ID in $LAST
# (not called as $(snapshot): it keeps state).
snapshot () {
  local id
  if [ -n "${1:-}" ]; then
    id=$("$VHDKIT" set snapshot "$SET" --id "$1" 2>"$T/snap.err") ||
      fail "$SHAPE: vhdkit set snapshot --id $1 failed: $(cat "$T/snap.err")"
    [ "$(norm "$id")" = "$(norm "$1")" ] || fail "$SHAPE: set snapshot --id $1 printed '$id'"
  else
    id=$("$VHDKIT" set snapshot "$SET" 2>"$T/snap.err") ||
      fail "$SHAPE: vhdkit set snapshot failed: $(cat "$T/snap.err")"
  fi
  id=$(norm "$id")
  [[ $id =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]] ||
    fail "$SHAPE: set snapshot printed '$id', not a GUID"
  snap_ids+=("$id") listed+=("$id")
  snap_sha[$id]=$(file_sha "$EXP")
  cp --sparse=always "$EXP" "$T/snap-$id.raw"
  LEDGER=$T/ledger-$id; : > "$LEDGER"         # the writes that follow it
  LAST=$id
}

drop_id () {   # drop_id ID [ref]: no longer a live snapshot (a reference point: still listed)
  local x keep=()
  for x in "${snap_ids[@]}"; do [ "$x" = "$1" ] || keep+=("$x"); done
  snap_ids=("${keep[@]}")
  [ "${2:-}" = ref ] && return 0
  keep=()
  for x in "${listed[@]}"; do [ "$x" = "$1" ] || keep+=("$x"); done
  listed=("${keep[@]}")
}

# changes_cover LABEL LIMIT TARGET|"" FILE...: vhdkit changes reports
# every "OFF LEN" of the files.
changes_cover () {
  local label=$1 limit=$2 target=$3 args=()
  shift 3
  [ -n "$target" ] && args=(--target-snapshot-id "$target")
  "$VHDKIT" changes "$SET" --limit-id "$limit" "${args[@]}" --all >"$T/ch.out" 2>"$T/ch.err" ||
    fail "$SHAPE $label: vhdkit changes $SET --limit-id $limit ${args[*]} --all failed: $(cat "$T/ch.err")"
  cat "$@" > "$T/ch.want"
  "$PY" "$SETPY" covers "$T/ch.out" "$T/ch.want" 2>"$T/cov.err" ||
    fail "$SHAPE $label: changes --limit-id $limit ${args[*]}: $(cat "$T/cov.err")"
}

# interval I: the writes between snapshot I and I+1 (all 4096-aligned,
# so that they suit both sector sizes).
interval () {
  local i=$1 size=$2
  w $((i * 3 * M + 4096 * i)) $((M + 3 * 4096))                 # across blocks
  w $((i * 4096)) 4096                                          # over base data
  w $(((i - 1) * 3 * M + M - 8192)) 16384                       # over the last interval's
  w $((20 * M + i * 8192)) 8192 --zero
  w $((30 * M)) $((i * M)) --discard                            # over data of earlier intervals
  w $((30 * M + i * 65536)) 4096                                # ... and back into it
  w $((size - 2 * 4096)) 4096                                   # near the end
}

shape () {   # shape NAME TYPE SS SIZE CONVERT-OPTION [SETNAME]
  local name=$1 type=$2 ss=$3 size=$4 copt=$5 setname=${6:-}
  local dir=$T/$name base id s1 s2 s3 s4 g tracked=1 stray="" LAST=""
  local -a snap_ids=() listed=()   # live snapshots; SnapshotIdList (with reference points)
  local -A snap_sha=() ref_ids=()
  SHAPE=$name SS=$ss SIZE=$size
  T=$T/work-$name; mkdir -p "$T"
  mkdir -p "$dir"
  base=$dir/$name.vhdx
  EXP=$T/expect.raw
  [ "$copt" = --no-tracking ] && tracked=0
  vk create "$base" --size "$size" --type "$type" --block-size 1M \
    --logical-sector-size "$ss" --physical-sector-size 4096
  mk_expect "$EXP" "$size"
  write_pattern "$base" "$EXP" "$size" "$M" "$ss"
  w_base () { rand_write "$base" "$EXP" "$1" "$2"; }
  w_base $((4 * M)) $((9 * M))
  if [ -n "$setname" ]; then
    SET=$dir/$setname.vhds
    vk set convert "$base" --output "$SET" "$copt"
  else
    SET=$dir/$name.vhds
    vk set convert "$base" "$copt"
  fi
  [ -f "$SET" ] || fail "$SHAPE: set convert made no $SET"
  LEDGER=$T/ledger-base; : > "$LEDGER"
  verify "after convert"
  audit "after convert"

  # A snapshot refuses writes.
  snapshot; s1=$LAST
  verify "after snapshot 1"
  head -c 4096 /dev/urandom > "$T/4k"
  if "$VHDKIT" write "$SET@$s1" --offset 0 --length 4096 <"$T/4k" 2>"$T/ro.err"; then
    fail "$SHAPE: vhdkit write $SET@$s1 succeeded; a snapshot is read-only"
  fi
  interval 1 "$size";  verify "after the writes following snapshot 1"
  snapshot; s2=$LAST; verify "after snapshot 2"
  interval 2 "$size";  verify "after the writes following snapshot 2"
  g=$(cat /proc/sys/kernel/random/uuid)
  snapshot "$g"; s3=$LAST; verify "after snapshot 3 (--id $g)"
  interval 3 "$size";  verify "after the writes following snapshot 3"
  snapshot; s4=$LAST; verify "after snapshot 4"
  interval 4 "$size";  verify "after the writes following snapshot 4"
  audit "after 4 snapshots"

  # Records: an RCT ID exactly when tracked.
  for id in "$s1" "$s2" "$s3" "$s4"; do
    g=$("$PY" "$SETPY" rctid "$SET" "$id")
    if [ $tracked = 1 ]; then
      [ -n "$g" ] || fail "$SHAPE: snapshot $id of a tracked set has no ResilientChangeTrackingId"
    else
      [ -z "$g" ] || fail "$SHAPE: snapshot $id of an untracked set has ResilientChangeTrackingId '$g'"
    fi
  done
  if [ $tracked = 1 ]; then
    changes_cover "S1..S2" "$s1" "$s2" "$T/ledger-$s1"
    changes_cover "S2..S3" "$s2" "$s3" "$T/ledger-$s2"
    changes_cover "S3..S4" "$s3" "$s4" "$T/ledger-$s3"
    changes_cover "S1..S4" "$s1" "$s4" "$T/ledger-$s1" "$T/ledger-$s2" "$T/ledger-$s3"
    changes_cover "S4..leaf" "$s4" "" "$T/ledger-$s4"
    changes_cover "S1..leaf" "$s1" "" "$T/ledger-$s1" "$T/ledger-$s2" "$T/ledger-$s3" "$T/ledger-$s4"
  fi

  # Delete S2: its image is merged away (its child S3's image takes its
  # data), one .avhdx fewer.
  local before after
  before=$(find "$dir" -name '*.avhdx' | wc -l)
  vk set delete "$SET" "$s2"
  drop_id "$s2"
  verify "after deleting snapshot 2"
  after=$(find "$dir" -name '*.avhdx' | wc -l)
  [ "$after" -eq $((before - 1)) ] ||
    fail "$SHAPE: deleting snapshot 2 left $after .avhdx files (before: $before); its image should have been merged away"
  if "$VHDKIT" read "$SET@$s2" --length 4096 >/dev/null 2>"$T/del.err"; then
    fail "$SHAPE: $SET@$s2 still reads after its deletion"
  fi
  audit "after deleting snapshot 2"
  if [ $tracked = 1 ]; then
    changes_cover "S1..S3 after the merge" "$s1" "$s3" "$T/ledger-$s1" "$T/ledger-$s2"
    changes_cover "S3..S4 after the merge" "$s3" "$s4" "$T/ledger-$s3"
  fi

  # Apply S3: the leaf reads as S3; then new writes.
  vk set apply "$SET" "$s3"
  cp --sparse=always "$T/snap-$s3.raw" "$EXP"
  verify "after applying snapshot 3"
  audit "after applying snapshot 3"
  LEDGER=$T/ledger-apply; : > "$LEDGER"
  interval 5 "$size"
  verify "after the writes following the apply"
  if [ $tracked = 1 ]; then
    # Everything that differs from S3 (what the apply reverted, and what
    # followed) counts as changed since S3; the same for S4.
    "$PY" "$SETPY" diff "$T/snap-$s3.raw" "$EXP" > "$T/diff3"
    "$PY" "$SETPY" diff "$T/snap-$s4.raw" "$EXP" > "$T/diff4"
    changes_cover "S3..leaf after the apply" "$s3" "" "$T/ledger-$s3" "$T/ledger-$s4" "$T/ledger-apply" "$T/diff3"
    changes_cover "S4..leaf after the apply" "$s4" "" "$T/ledger-apply" "$T/diff4"
  fi

  # Delete S3, the applied one: its image has two children (S4's image
  # and the new leaf), so it stays, without a record.
  vk set delete "$SET" "$s3"
  drop_id "$s3"
  verify "after deleting the applied snapshot 3"
  audit "after deleting the applied snapshot 3"

  # Delete S4 keeping a reference point: no longer readable, its ID
  # still answers as a LimitId (tracked sets).  Its image has no child:
  # deleted; S3's image is then left with one child, the leaf, for
  # optimize to merge.
  if [ $tracked = 1 ]; then
    vk set delete "$SET" "$s4" --persist-reference
    ref_ids[$s4]=1
    drop_id "$s4" ref
  else
    vk set delete "$SET" "$s4"
    drop_id "$s4"
  fi
  verify "after deleting snapshot 4"
  if "$VHDKIT" read "$SET@$s4" --length 4096 >/dev/null 2>"$T/ref.err"; then
    fail "$SHAPE: $SET@$s4 still reads after its deletion"
  fi
  audit "after deleting snapshot 4"
  if [ $tracked = 1 ]; then
    changes_cover "reference point S4..leaf" "$s4" "" "$T/ledger-apply" "$T/diff4"
  fi

  # A stray file of the set's name pattern (as a crash leaves one): listed
  # in AllPaths, deleted by optimize.
  stray=$("$PY" - "$SET" <<'EOF'
import json, os, re, subprocess, sys, uuid
j = json.loads(subprocess.run([os.environ["VHDKIT"], "set", "info", sys.argv[1], "--json"],
                              capture_output=True, text=True, check=True).stdout)
stem = os.path.basename(sys.argv[1])[:-len(".vhds")]
for p in j["AllPaths"]:
    b = os.path.basename(p)
    r = re.fullmatch(re.escape(stem) + r"_(\{?)([0-9A-Fa-f-]{36})(\}?)\.avhdx", b)
    if r:
        g = str(uuid.uuid4())
        if r.group(2) != r.group(2).lower():
            g = g.upper()
        print(os.path.join(os.path.dirname(sys.argv[1]), "%s_%s%s%s.avhdx" % (stem, r.group(1), g, r.group(3))))
        break
EOF
)
  if [ -n "$stray" ]; then
    vk create "$stray" --parent "$base"
    "$VHDKIT" set info "$SET" --json | grep -qF "$(basename "$stray")" ||
      fail "$SHAPE: set info's AllPaths does not list the unreferenced $(basename "$stray")"
  else
    info "$SHAPE: no member is named SETNAME_<GUID>.avhdx; the stray-file step is left out"
  fi
  before=$(find "$dir" -name '*.avhdx' ! -name "$(basename "${stray:-none}")" | wc -l)
  vk set optimize "$SET"
  after=$(find "$dir" -name '*.avhdx' | wc -l)
  [ "$after" -eq $((before - 1)) ] ||
    fail "$SHAPE: optimize left $after .avhdx files (before: $before besides the stray); S3's image, with no record and one child, should have been merged away"
  [ -z "$stray" ] || [ ! -e "$stray" ] || fail "$SHAPE: set optimize left the unreferenced $(basename "$stray")"
  verify "after optimize"
  audit "after optimize"
  if [ $tracked = 1 ]; then
    "$PY" "$SETPY" diff "$T/snap-$s1.raw" "$EXP" > "$T/diff1"
    changes_cover "reference point S4..leaf after optimize" "$s4" "" "$T/ledger-apply" "$T/diff4"
    changes_cover "S1..leaf after optimize" "$s1" "" "$T/ledger-apply" "$T/diff1"
  fi
  # And the leaf still takes writes after all that.
  LEDGER=$T/ledger-final; : > "$LEDGER"
  interval 6 "$size"
  verify "after the final writes"
  audit "at the end"
  if [ $tracked = 1 ]; then
    changes_cover "S1..leaf at the end" "$s1" "" "$T/ledger-apply" "$T/ledger-final" "$T/diff1"
  fi
  info "$SHAPE: passed"
}

# Each shape in its own subshell (own T), two at a time.
shapes=(
  "dyn512 dynamic 512 $((64*M + 512)) --granularity=64K"
  "fix512 fixed 512 $((64*M)) --granularity=4K vm"
  "dyn4k dynamic 4096 $((64*M + 8192)) --no-tracking"
  "fix4k fixed 4096 $((64*M)) --granularity=64K"
)
pids=()
run_shape () {   # in the background: the shape's log and exit status to $T
  local n=${1%% *}
  set +e
  # shellcheck disable=SC2086   # the fields of one shape
  ( set -e; set -- $1; shape "$@" ) >"$T/log-$n" 2>&1
  echo $? > "$T/rc-$n"
}
for s in "${shapes[@]}"; do
  if [ ${#pids[@]} -ge 2 ]; then wait -n 2>/dev/null || true; fi
  run_shape "$s" &
  pids+=($!)
done
wait
bad=0
for s in "${shapes[@]}"; do
  n=${s%% *}
  cat "$T/log-$n" >&2
  rc=$(cat "$T/rc-$n" 2>/dev/null || echo missing)
  if [ "$rc" != 0 ]; then
    echo "FAIL: shape $n (exit $rc)" >&2
    bad=1
  fi
done
[ $bad = 0 ] || exit 1
