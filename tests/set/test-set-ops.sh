#!/usr/bin/env bash
# VHD Set operations and GetVirtualDiskChanges on sets, one behaviour at a
# time (docs/VHD-SETS.md): convert, snapshot, info/snapshots output, the
# changes between snapshots and their return codes, delete with and
# without a reference point, apply on a branch, optimize, set-info, and
# the errors of each.
. "$(dirname "$0")/../lib.sh"
need /usr/bin/python3

V=$VHDKIT
cd "$T" || exit 1

# code CMD...: run a command that must fail; print its return code.
code () {
  local out rc=0
  out=$("$@" 2>&1 >/dev/null) && fail "expected failure: $*"
  [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "more than one error line from: $*: $out"
  printf '%s\n' "$out" | sed -n 's/^vhdkit: [^:]*: .* (\(327[0-9][0-9]\)): .*/\1/p'
}
expect_code () {   # expect_code CODE CMD...
  local want=$1 got; shift
  got=$(code "$@")
  [ "$got" = "$want" ] || fail "expected $want, got '${got}' from: $*"
}
sha () { "$V" read "$1" | sha256sum | cut -d' ' -f1; }
json () { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# ---- convert ----
"$V" create d.vhdx --size 32M --block-size 1M >/dev/null
head -c 2M /dev/urandom | "$V" write d.vhdx --offset 0
"$V" create raw.img --size 8M >/dev/null
expect_code 32770 "$V" set convert raw.img
"$V" create c.avhdx --parent d.vhdx >/dev/null
expect_code 32770 "$V" set convert c.avhdx
rm -f c.avhdx
mkdir other
expect_code 32773 "$V" set convert d.vhdx --output other/x.vhds
expect_code 32773 "$V" set convert d.vhdx --output d.set
"$V" set convert d.vhdx
[ -f d.vhds ] && [ -f d.vhdx.rct ] || fail "convert made no set or no tracking"
expect_code 32773 "$V" set convert d.vhdx
"$V" rct status d.vhds --json | json 'd["Enabled"]' | grep -qx True || fail "tracking not enabled by convert"
[ "$(sha d.vhds)" = "$(sha d.vhdx)" ] || fail "the set does not read as its base"
info "convert: ok"

# ---- snapshots and changes ----
S1=$("$V" set snapshot d.vhds)
echo "$S1" | grep -Eqx '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' || fail "bad snapshot ID $S1"
h1=$(sha d.vhds@"$S1")
head -c 64K /dev/urandom | "$V" write d.vhds --offset 4M
R=$("$V" rct checkpoint d.vhds)
head -c 4K /dev/urandom | "$V" write d.vhds --offset 8M
S2=$("$V" set snapshot d.vhds --id 22222222-2222-4222-8222-222222222222)
[ "$S2" = 22222222-2222-4222-8222-222222222222 ] || fail "--id not used"
expect_code 32773 "$V" set snapshot d.vhds --id 22222222-2222-4222-8222-222222222222
expect_code 32773 "$V" set snapshot d.vhds --id not-a-guid
h2=$(sha d.vhds@"$S2")
head -c 4K /dev/urandom | "$V" write d.vhds --offset 16M
[ "$(sha d.vhds@"$S1")" = "$h1" ] || fail "S1 changed"
[ "$("$V" changes d.vhds --limit-id "$S1" --target-snapshot-id "$S2")" = "4194304 65536
8388608 65536" ] || fail "S1..S2 wrong: $("$V" changes d.vhds --limit-id "$S1" --target-snapshot-id "$S2")"
[ "$("$V" changes d.vhds --limit-id "$R" --target-snapshot-id "$S2")" = "8388608 65536" ] ||
  fail "RCT ID..S2 wrong"
[ "$("$V" changes d.vhds --limit-id "$S2")" = "16777216 65536" ] || fail "S2..live wrong"
[ "$("$V" changes d.vhds --limit-id "$S1" | wc -l)" = 3 ] || fail "S1..live wrong"
[ -z "$("$V" changes d.vhds --limit-id "$S2" --target-snapshot-id "$S2")" ] || fail "S2..S2 not empty"
"$V" changes d.vhds --limit-id "$S1" --target-snapshot-id "$S2" --json |
  json 'd["ReturnValue"], d["ProcessedByteLength"], d["ChangedByteOffsets"]' | grep -qx "0 33554432 \[4194304, 8388608\]" ||
  fail "--json answer wrong"
expect_code 32773 "$V" changes d.vhds --limit-id "$S2" --target-snapshot-id "$S1"
expect_code 32773 "$V" changes d.vhds --limit-id "$S1" --target-snapshot-id xyz
expect_code 32775 "$V" changes d.vhds --limit-id "$S1" --target-snapshot-id 99999999-9999-4999-8999-999999999999
expect_code 32775 "$V" changes d.vhds --limit-id 99999999-9999-4999-8999-999999999999
expect_code 32773 "$V" changes d.vhds --limit-id garbage
expect_code 32773 "$V" changes d.vhds@"$S2" --limit-id "$S1" --target-snapshot-id "$S2"
"$V" changes d.vhds@"$S2" --limit-id "$R" | grep -qx "8388608 65536" || fail "changes on SET@S2 wrong"
"$V" create plain.vhdx --size 8M >/dev/null
"$V" rct enable plain.vhdx
P=$("$V" rct checkpoint plain.vhdx)
expect_code 32770 "$V" changes plain.vhdx --limit-id "$P" --target-snapshot-id "$S2"
expect_code 32769 "$V" write d.vhds@"$S1" --offset 0 --length 4096 --zero
expect_code 32775 "$V" read d.vhds@99999999-9999-4999-8999-999999999999 --length 512
expect_code 32773 "$V" read d.vhds@nope --length 512
expect_code 32770 "$V" merge d.vhds
[ "$(sha d.vhds@"$S1")" = "$h1" ] || fail "S1 changed by a refused merge"
info "snapshots and changes: ok"

# ---- info and snapshots output ----
"$V" set info d.vhds --json > info.json
json 'len(d["SnapshotIdList"]), len(d["AllPaths"]), d["Path"] == "'"$T"'/d.vhds"' < info.json | grep -qx "2 3 True" ||
  fail "set info: $(cat info.json)"
json 'd["AllPaths"][-1] == "'"$T"'/d.vhdx" and d["AllPaths"][0] == d["LeafPath"]' < info.json | grep -qx True ||
  fail "AllPaths order: $(cat info.json)"
"$V" set snapshots d.vhds --id "$S2" --parents --json > snap.json
json 'len(d["Snapshots"]), d["Snapshots"][0]["SnapshotId"], d["Snapshots"][0]["ParentPathsList"] == ["'"$T"'/d.vhdx"], d["Snapshots"][0]["ResilientChangeTrackingId"][:5]' < snap.json |
  grep -qx "1 $S2 True rctX:" || fail "set snapshots: $(cat snap.json)"
expect_code 32775 "$V" set snapshots d.vhds --id 99999999-9999-4999-8999-999999999999
info "info: ok"

# ---- locks (VS-7) ----
python3 - "$T/d.vhds" "$V" <<'PY' || fail "an operation ran while a disk of the set was open"
import fcntl, struct, subprocess, sys
# The set file's lock is an open file description record lock (VS-7):
# F_OFD_SETLK (37) with a shared (read) lock of the whole file.
f = open(sys.argv[1], 'rb')
fcntl.fcntl(f, 37, struct.pack('hhqqi', fcntl.F_RDLCK, 0, 0, 0, 0))
r = subprocess.run([sys.argv[2], 'set', 'snapshot', sys.argv[1]], capture_output=True, text=True)
sys.exit(0 if r.returncode == 1 and '(32774)' in r.stderr else 1)
PY
# A snapshot reads while the leaf is held open for writing (its image
# locked exclusively, the set shared, as vhdkit_disk_open does).
python3 - "$T/d.vhds" "$V" "$S1" "$h1" <<'PY' || fail "a snapshot could not be read while the leaf was open for writing"
import fcntl, hashlib, json, struct, subprocess, sys
setp, v, s1, h1 = sys.argv[1:5]
leaf = json.loads(subprocess.run([v, 'set', 'info', setp, '--json'], capture_output=True, text=True).stdout)['LeafPath']
f = open(setp, 'rb'); fcntl.fcntl(f, 37, struct.pack('hhqqi', fcntl.F_RDLCK, 0, 0, 0, 0))
g = open(leaf, 'rb'); fcntl.flock(g, fcntl.LOCK_EX | fcntl.LOCK_NB)
r = subprocess.run([v, 'read', setp + '@' + s1], capture_output=True)
w = subprocess.run([v, 'write', setp, '--offset', '0', '--length', '4096', '--zero'], capture_output=True, text=True)
ok = r.returncode == 0 and hashlib.sha256(r.stdout).hexdigest() == h1 and w.returncode == 1 and '(32774)' in w.stderr
sys.exit(0 if ok else 1)
PY
info "locks: ok"

# ---- delete: merge, reference point ----
hleaf=$(sha d.vhds)
"$V" set delete d.vhds "$S1" --persist-reference --no-progress
[ ! -e d.vhdx ] || fail "the base was not merged away"
[ "$(sha d.vhds@"$S2")" = "$h2" ] || fail "S2 changed by the delete"
[ "$(sha d.vhds)" = "$hleaf" ] || fail "the leaf changed by the delete"
"$V" changes d.vhds --limit-id "$S1" --target-snapshot-id "$S2" | grep -qx "4194304 65536" ||
  fail "reference point S1 no longer answers"
expect_code 32775 "$V" read d.vhds@"$S1" --length 512
expect_code 32775 "$V" changes d.vhds --limit-id "$S2" --target-snapshot-id "$S1"
"$V" set snapshots d.vhds --id "$S1" --json | json 'd["Snapshots"][0]["SnapshotPath"]' | grep -qx '' ||
  fail "reference point has a path"
for f in $("$V" set info d.vhds --json | json '" ".join(d["AllPaths"])'); do
  "$V" check "$f" >/dev/null || fail "$f does not check clean after the merge"
done
info "delete: ok"

# ---- apply, branches, optimize ----
S3=$("$V" set snapshot d.vhds)
h3=$(sha d.vhds@"$S3")
head -c 8K /dev/urandom | "$V" write d.vhds --offset 20M
"$V" set apply d.vhds "$S2"
[ "$(sha d.vhds)" = "$h2" ] || fail "apply did not revert to S2"
[ "$(sha d.vhds@"$S3")" = "$h3" ] || fail "S3 lost by apply"
"$V" changes d.vhds --limit-id "$S2" > ch.txt
grep -qx "16777216 65536" ch.txt || fail "the reverted block is not reported since S2"
"$V" changes d.vhds --limit-id "$S3" | grep -q . || fail "nothing reported since S3 after reverting past it"
# S2's image now has two children (S3's and the new leaf): delete keeps it.
"$V" set delete d.vhds "$S2" --no-progress
[ "$(sha d.vhds)" = "$h2" ] || fail "the leaf changed"
[ "$(sha d.vhds@"$S3")" = "$h3" ] || fail "S3 changed"
# Deleting S3 leaves S2's image with one child: optimize merges it.
"$V" set delete d.vhds "$S3" --no-progress
n=$("$V" set info d.vhds --json | json 'len(d["AllPaths"])')
"$V" set optimize d.vhds
n2=$("$V" set info d.vhds --json | json 'len(d["AllPaths"])')
[ "$n2" -le "$n" ] || fail "optimize grew the set"
[ "$(sha d.vhds)" = "$h2" ] || fail "optimize changed the content"
# Stray files of the member pattern go; others stay.
touch d_00000000-0000-4000-8000-000000000000.avhdx d_00000000-0000-4000-8000-000000000000.avhdx.rct keep.txt \
      d_backup.avhdx d_00000000-0000-4000-8000-000000000000.avhdx.notes
"$V" set info d.vhds --json | json 'any(p.endswith("d_00000000-0000-4000-8000-000000000000.avhdx") for p in d["AllPaths"])' |
  grep -qx True || fail "AllPaths does not list an unreferenced file"
"$V" set optimize d.vhds
[ ! -e d_00000000-0000-4000-8000-000000000000.avhdx ] && [ ! -e d_00000000-0000-4000-8000-000000000000.avhdx.rct ] &&
  [ -e keep.txt ] && [ -e d_backup.avhdx ] && [ -e d_00000000-0000-4000-8000-000000000000.avhdx.notes ] ||
  fail "optimize: wrong files removed"
info "apply and optimize: ok"

# ---- set-info ----
S4=$("$V" set snapshot d.vhds)
expect_code 32773 "$V" set set-info d.vhds --id "$S4" --rct-id "$R"
"$V" set set-info d.vhds --id "$S4" --creation-time 2020-01-02T03:04:05.5Z
"$V" set snapshots d.vhds --id "$S4" --json | json 'd["Snapshots"][0]["CreationTime"]' |
  grep -qx "2020-01-02T03:04:05.500000Z" || fail "creation time not set"
RID=$("$V" set snapshots d.vhds --id "$S4" --json | json 'd["Snapshots"][0]["ResilientChangeTrackingId"]')
"$V" set set-info d.vhds --id 44444444-4444-4444-8444-444444444444 --rct-id "$RID"
"$V" changes d.vhds --limit-id 44444444-4444-4444-8444-444444444444 >/dev/null || fail "added reference point unusable"
expect_code 32773 "$V" set set-info d.vhds --id 55555555-5555-4555-8555-555555555555
leaf=$("$V" set info d.vhds --json | json 'd["LeafPath"]')
expect_code 32773 "$V" set set-info d.vhds --id 55555555-5555-4555-8555-555555555555 --path "$leaf"
expect_code 32773 "$V" set set-info d.vhds --id 55555555-5555-4555-8555-555555555555 --path keep.txt
info "set-info: ok"

# ---- a snapshot without tracking ----
"$V" create n.vhdx --size 8M >/dev/null
"$V" set convert n.vhdx --no-tracking
N1=$("$V" set snapshot n.vhds)
"$V" set snapshots n.vhds --json | json 'd["Snapshots"][0]["ResilientChangeTrackingId"]' | grep -qx '' ||
  fail "untracked snapshot has an RCT ID"
expect_code 32775 "$V" changes n.vhds --limit-id "$N1"
info "untracked: ok"
exit 0
