#!/usr/bin/env bash
# vhdkit --connect: every verb through vhdkitd against the same files as
# the local verb prints the same (text and --json) and fails with the
# same codes; what the service cannot do is refused with a sentence
# (read, write, --repair, --existing, --kinds, ...); a local verb that
# finds an image held by vhdkitd names the socket; Ctrl-C terminates
# the service's job.  The daemon closes idle disks after 1 s, and the
# local verb runs once it has (idle).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/daemon-lib.sh"
unset VHDKIT_CONNECT
D=$T/disks
M=$((1 << 20)) G=$((1 << 30))

start_daemon --idle-timeout 1

# Wait until the daemon holds no disk (Vhdkit_Service.ListOpenDisks).
idle () {
  local i r
  for i in $(seq 1 100); do
    r=$(call Vhdkit_Service ListOpenDisks '{}')
    expect_rc 0 "$r"
    [ "$(jf Paths "$r")" = "[]" ] && return 0
    sleep 0.1
  done
  fail "vhdkitd still holds disks after 10 s: $r"
}

remote () { "$VHDKIT" --connect "$SOCK" "$@"; }

# run WHERE ARGS...: the verb through the service (WHERE=r) or locally
# (l) into $T/WHERE.out, $T/WHERE.err and $T/WHERE.rc.
run () {
  local w=$1 rc=0; shift
  if [ "$w" = r ]; then remote "$@" > "$T/r.out" 2> "$T/r.err" || rc=$?
  else idle; "$VHDKIT" "$@" > "$T/l.out" 2> "$T/l.err" || rc=$?; fi
  echo "$rc" > "$T/$w.rc"
}

# The code "(NNNNN)" of the first error line, or "-".
code_of () { grep -o '([0-9]\{5\})' "$1" | head -1 || echo -; }

# same ARGS...: through the service and locally, the same exit status,
# the same stdout and, on failure, the same return code.  Only InUse
# differs in info: the service holds the disk it describes.
same () {
  run r "$@"; run l "$@"
  sed -i 's/^InUse:                   true$/InUse:                   false/; s/^  "InUse": true,$/  "InUse": false,/' "$T/r.out"
  [ "$(cat "$T/r.rc")" = "$(cat "$T/l.rc")" ] ||
    fail "vhdkit $*: exit $(cat "$T/r.rc") through vhdkitd, $(cat "$T/l.rc") locally: $(cat "$T/r.err" "$T/l.err")"
  if [ "$(cat "$T/l.rc")" = 0 ]; then
    diff -u "$T/l.out" "$T/r.out" >&2 || fail "vhdkit $*: the output through vhdkitd differs (above)"
  else
    [ "$(code_of "$T/r.err")" = "$(code_of "$T/l.err")" ] ||
      fail "vhdkit $*: failed with $(code_of "$T/r.err") through vhdkitd, $(code_of "$T/l.err") locally: $(cat "$T/r.err" "$T/l.err")"
    # --json: the error object, with the same ReturnValue.
    if [ -s "$T/l.out" ]; then
      [ "$(jf ReturnValue < "$T/r.out")" = "$(jf ReturnValue < "$T/l.out")" ] ||
        fail "vhdkit $*: the JSON error objects differ: $(cat "$T/r.out" "$T/l.out")"
    fi
  fi
}

# refused CODE PATTERN ARGS...: through the service, exit 1 with CODE and
# a sentence matching PATTERN.
refused () {
  local code=$1 pat=$2; shift 2
  run r "$@"
  [ "$(cat "$T/r.rc")" = 1 ] || fail "vhdkit --connect $*: exit $(cat "$T/r.rc"), not 1: $(cat "$T/r.err")"
  grep -q "($code)" "$T/r.err" || fail "vhdkit --connect $*: not ($code): $(cat "$T/r.err")"
  grep -q -- "$pat" "$T/r.err" || fail "vhdkit --connect $*: the sentence does not say '$pat': $(cat "$T/r.err")"
}

# The JSON fields of two images that must agree (not their identities).
layout () {
  "$VHDKIT" info --json "$1" | "$PY" -c '
import json, sys
v = json.load(sys.stdin)
for k in ("Path", "VirtualDiskId", "DataWriteGuid", "ParentPath", "ParentLinkage"):
    v.pop(k)
print(json.dumps(v, sort_keys=True))'
}

# ---- create: the same images as the local verb makes ----
remote create "$D/r.vhdx" --size 1G --block-size 8M --logical-sector-size 4096
"$VHDKIT" create "$D/l.vhdx" --size 1G --block-size 8M --logical-sector-size 4096
remote create "$D/rf.vhdx" --size 64M --type fixed --no-progress
"$VHDKIT" create "$D/lf.vhdx" --size 64M --type fixed
remote create "$D/rc.avhdx" --parent "$D/rf.vhdx"
"$VHDKIT" create "$D/lc.avhdx" --parent "$D/lf.vhdx"
idle
for p in r:l rf:lf rc:lc; do
  [ "$(layout "$D/${p%%:*}.vhdx" 2>/dev/null || layout "$D/${p%%:*}.avhdx")" = \
    "$(layout "$D/${p#*:}.vhdx" 2>/dev/null || layout "$D/${p#*:}.avhdx")" ] ||
    fail "create ${p%%:*} through vhdkitd differs from ${p#*:} made locally"
done
[ "$("$VHDKIT" info "$D/rc.avhdx" | sed -n 's/^ParentPath: *//p')" = "$D/rf.vhdx" ] ||
  fail "the differencing image made through vhdkitd does not name its parent"
same create "$D/r.vhdx" --size 1G                       # exists: 32773
refused 32770 'raw image' create "$D/x.img" --size 1M
refused 32770 '--format raw' create "$D/x.vhdx" --size 1M --format raw
[ ! -e "$D/x.img" ] && [ ! -e "$D/x.vhdx" ] || fail "a refused create made a file"

# ---- without libcurl ----
# vhdkit loads libcurl only for --connect: with the library hidden (a
# private mount namespace over its file), local verbs still work and
# --connect fails with 32770 and a sentence naming the package.
curl_so=$(ldconfig -p | sed -n 's/^[[:space:]]*libcurl\.so\.4 (libc6,x86-64) => //p' | head -1)
if [ "$(id -u)" = 0 ] && [ -n "$curl_so" ] && command -v unshare >/dev/null; then
  rc=0
  unshare -m sh -c 'mount --bind /dev/null "$1" && shift && "$@"' sh "$curl_so" \
    "$VHDKIT" --connect "$SOCK" info "$D/r.vhdx" > "$T/nocurl.out" 2> "$T/nocurl.err" || rc=$?
  [ "$rc" = 1 ] && grep -q '(32770)' "$T/nocurl.err" && grep -q 'libcurl4' "$T/nocurl.err" ||
    fail "--connect without libcurl: exit $rc: $(cat "$T/nocurl.err")"
  unshare -m sh -c 'mount --bind /dev/null "$1" && shift && "$@"' sh "$curl_so" \
    "$VHDKIT" info "$D/r.vhdx" > /dev/null || fail "a local verb needs libcurl"
else
  info "NOT CHECKED: --connect without libcurl (needs root, unshare and ldconfig's libcurl.so.4)"
fi

# ---- info ----
same info "$D/r.vhdx"
same info --json "$D/r.vhdx"
same info "$D/rc.avhdx"
same info --json "$D/rf.vhdx"
same info "$D/missing.vhdx"
same info --json "$D/missing.vhdx"
# The other ways to name the service and the image.
run r info --json "$D/r.vhdx"; cp "$T/r.out" "$T/want"
VHDKIT_CONNECT=$SOCK "$VHDKIT" info --json "$D/r.vhdx" > "$T/got"
diff -u "$T/want" "$T/got" >&2 || fail "VHDKIT_CONNECT does not answer as --connect"
"$VHDKIT" --connect="$SOCK" info "$D/r.vhdx" --json > "$T/got"
diff -u "$T/want" "$T/got" >&2 || fail "vhdkit --connect=SOCKET VERB does not answer as VERB --connect"
(cd "$D" && "$VHDKIT" info --json --connect "$SOCK" r.vhdx) > "$T/got"
grep -q '"Path": "r.vhdx"' "$T/got" && [ "$(jf VirtualDiskId < "$T/got")" = "$(jf VirtualDiskId < "$T/want")" ] ||
  fail "a relative path through vhdkitd: $(cat "$T/got")"
mkdir "$D/sub"
(cd "$D/sub" && "$VHDKIT" info --json --connect "$SOCK" ../r.vhdx) > "$T/got" ||
  fail "a path with .. through vhdkitd failed"
[ "$(jf VirtualDiskId < "$T/got")" = "$(jf VirtualDiskId < "$T/want")" ] || fail "../r.vhdx is another disk"
rc=0; "$VHDKIT" info --connect "$T/nobody.sock" "$D/r.vhdx" 2> "$T/err" || rc=$?
[ $rc = 1 ] && grep -q '(32777)' "$T/err" && grep -q "$T/nobody.sock" "$T/err" ||
  fail "no vhdkitd on the socket: exit $rc, $(cat "$T/err")"
rc=0; VHDKIT_CONNECT= "$VHDKIT" info "$D/r.vhdx" > /dev/null || rc=$?
[ $rc = 0 ] || fail "an empty VHDKIT_CONNECT does not mean local"

# ---- check ----
same check "$D/r.vhdx"
same check --json "$D/rc.avhdx"
same check --json "$D/missing.vhdx"
printf 'garbage' > "$D/bad.vhdx"
run r check --json "$D/bad.vhdx"; run l check --json "$D/bad.vhdx"
[ "$(cat "$T/r.rc")" = 1 ] && [ "$(cat "$T/l.rc")" = 1 ] || fail "check of garbage: exit $(cat "$T/r.rc") / $(cat "$T/l.rc")"
[ "$(jf ReturnValue < "$T/r.out")" = 32768 ] && grep -q 'vhdxfile' "$T/r.err" ||
  fail "check of garbage through vhdkitd does not name the problem: $(cat "$T/r.out" "$T/r.err")"
refused 32770 '--repair' check --repair "$D/r.vhdx"

# ---- rct, changes ----
same rct status "$D/r.vhdx"
same rct disable "$D/r.vhdx"                            # not tracked: 32775
remote rct enable "$D/r.vhdx" --granularity 128K
same rct enable "$D/r.vhdx"                             # tracked: 32775
same rct status "$D/r.vhdx"
same rct status --json "$D/r.vhdx"
id=$(remote rct checkpoint "$D/r.vhdx")
case $id in rctX:*) ;; *) fail "rct checkpoint through vhdkitd printed '$id'" ;; esac
[ "$(remote rct status --json "$D/r.vhdx" | jf MostRecentId)" = "$id" ] || fail "MostRecentId is not the new reference point"
idle
head -c $((3 * M)) /dev/urandom > "$T/data"
"$VHDKIT" write "$D/r.vhdx" --offset $((100 * M)) < "$T/data"
for o in 1 5 9 300 301 302 700; do
  "$VHDKIT" write "$D/r.vhdx" --offset $((o * M)) --length 65536 --zero
done
for opts in "" "--all" "--json" "--json --all" "--max-ranges 2" "--max-ranges 2 --all" \
            "--max-ranges 3 --json" "--max-ranges 1 --all --json" "--max-ranges 7" \
            "--max-ranges 8" "--max-ranges 6 --json" "--offset 4M --length 8M" \
            "--offset 4M --max-ranges 1" "--offset 301M --all --max-ranges 1" \
            "--offset 5M --length 0" "--offset 1G" "--offset 1G --json" \
            "--offset 2G" "--offset 2G --json" "--offset 513" "--length 3G" \
            "--max-ranges 16777217 --json"; do
  # shellcheck disable=SC2086
  same changes "$D/r.vhdx" --limit-id "$id" $opts
done
[ "$(wc -l < "$T/l.out")" -ge 0 ]
same changes "$D/r.vhdx" --limit-id nonsense --json     # 32773
same changes "$D/r.vhdx" --limit-id "rctX:00000000:0000:0000:0000:000000000000:00000001"   # 32775
same changes "$D/l.vhdx" --limit-id "$id"               # not tracked: 32775
refused 32770 '--kinds' changes "$D/r.vhdx" --limit-id "$id" --kinds
same rct status "$D/r.vhdx"

# ---- resize ----
same resize "$D/r.vhdx" --size 1M                       # would drop data: 32773
remote resize "$D/r.vhdx" --size 2G
same info --json "$D/r.vhdx"
[ "$(remote info --json "$D/r.vhdx" | jf MaxInternalSize)" = $((2 * G)) ] || fail "resize through vhdkitd"

# ---- convert, merge ----
remote convert "$D/r.vhdx" "$D/conv.vhdx" --type fixed --block-size 2M --no-progress
idle
[ "$(vhdkit_sha "$D/r.vhdx")" = "$(vhdkit_sha "$D/conv.vhdx")" ] || fail "the image converted through vhdkitd reads differently"
[ "$("$VHDKIT" info "$D/conv.vhdx" | sed -n 's/^Type: *//p')" = Fixed ] || fail "convert --type fixed through vhdkitd"
refused 32770 '--existing' convert "$D/r.vhdx" "$D/conv.vhdx" --existing
refused 32770 'raw image' convert "$D/r.vhdx" "$D/conv.img"
same convert "$D/r.vhdx" "$D/conv.vhdx"                 # exists: 32773
same convert "$D/missing.vhdx" "$D/x.vhdx"              # 32779
idle
"$VHDKIT" write "$D/rc.avhdx" --offset $((2 * M)) < "$T/data"
want=$(vhdkit_sha "$D/rc.avhdx")
remote merge "$D/rc.avhdx" --no-progress
idle
[ "$(vhdkit_sha "$D/rf.vhdx")" = "$want" ] || fail "the parent after a merge through vhdkitd does not read as the child did"
same merge "$D/rf.vhdx"                                 # not differencing: 32773

# ---- VHD Sets ----
refused 32770 '--output' set convert "$D/conv.vhdx" --output "$D/other.vhds"
remote set convert "$D/conv.vhdx"
[ -f "$D/conv.vhds" ] || fail "set convert through vhdkitd made no conv.vhds"
refused 32770 '--id' set snapshot "$D/conv.vhds" --id 11111111-2222-3333-4444-555555555555
s1=$(remote set snapshot "$D/conv.vhds")
idle
"$VHDKIT" write "$D/conv.vhds" --offset $((20 * M)) < "$T/data"
s2=$(remote set snapshot --json "$D/conv.vhds" | jf SnapshotId)
[ -n "$s1" ] && [ -n "$s2" ] && [ "$s1" != "$s2" ] || fail "set snapshot through vhdkitd: '$s1' '$s2'"
same set info "$D/conv.vhds"
same set info --json "$D/conv.vhds"
same set snapshots "$D/conv.vhds"
same set snapshots --json --parents "$D/conv.vhds"
same set snapshots --parents --id "$s2" "$D/conv.vhds"
same set snapshots --id 11111111-2222-3333-4444-555555555555 "$D/conv.vhds"
same changes "$D/conv.vhds" --limit-id "$s1" --all --json
same changes "$D/conv.vhds" --limit-id "$s1" --target-snapshot-id "$s2" --all
refused 32770 'snapshot' info "$D/conv.vhds@$s1"
remote set set-info "$D/conv.vhds" --id "$s1" --creation-time 2020-01-02T03:04:05.123456Z
same set snapshots --json --id "$s1" "$D/conv.vhds"
grep -q '2020-01-02T03:04:05.123456Z' "$T/r.out" || fail "set set-info --creation-time through vhdkitd: $(cat "$T/r.out")"
remote set apply "$D/conv.vhds" "$s1"
idle
[ "$(vhdkit_sha "$D/conv.vhds")" = "$(vhdkit_sha "$D/conv.vhdx")" ] || fail "set apply through vhdkitd: the leaf does not read as the snapshot"
same set apply "$D/conv.vhds" 11111111-2222-3333-4444-555555555555
remote set delete "$D/conv.vhds" "$s2" --persist-reference --no-progress
remote set optimize "$D/conv.vhds" --no-progress
same set snapshots "$D/conv.vhds"
same set info --json "$D/conv.vhds"
same check "$D/conv.vhds"

# ---- read and write: no method yet; the file is never opened ----
refused 32770 'read is not available through vhdkitd' read "$D/missing.vhdx"
refused 32770 'write is not available through vhdkitd' write "$D/missing.vhdx" --offset 0 < /dev/null
[ ! -s "$T/r.out" ] || fail "a refused read printed data"

# ---- Ctrl-C: the job of a 1 GiB convert is terminated ----
{ yes vhdkit || true; } | head -c $G > "$D/data.img"
# A background job of a script ignores SIGINT; start the CLI without that.
(exec "$PY" -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$VHDKIT" convert --connect "$SOCK" "$D/data.img" "$D/big.vhdx" \
  > /dev/null 2> "$T/int.err") &
cpid=$!
jid=
for i in $(seq 1 100); do
  jid=$(curl -sS --unix-socket "$SOCK" "http://localhost/$NS/Msvm_ConcreteJob" | "$PY" -c '
import json, sys
for j in json.load(sys.stdin)["Msvm_ConcreteJob"]:
    if j["Name"] == "ConvertVirtualHardDisk" and j["JobState"] == 4:
        print(j["InstanceID"])')
  [ -n "$jid" ] && break
  sleep 0.05
done
[ -n "$jid" ] || fail "the 1 GiB convert through vhdkitd did not show as a running job"
[ "$(cat "/proc/$cpid/comm" 2>/dev/null)" = vhdkit ] || fail "vhdkit is not the process started"
kill -INT "$cpid"
rc=0; wait "$cpid" || rc=$?
job=$(wait_job "$jid")
[ "$(jf JobState "$job")" = 8 ] || fail "after SIGINT to vhdkit the job is not Terminated: $job (vhdkit: exit $rc, $(cat "$T/int.err"))"
[ $rc = 1 ] && grep -q '(32768)' "$T/int.err" || fail "vhdkit after SIGINT: exit $rc, $(cat "$T/int.err")"
if [ -e "$D/big.vhdx" ]; then idle; "$VHDKIT" check "$D/big.vhdx" > /dev/null || fail "the cancelled convert left a damaged file"; fi
stop_daemon

# ---- the hint: a local verb that finds an image held by vhdkitd ----
# make run's socket, ./var/vhdkitd.sock, seen from the top of the tree.
mkdir "$T/var"
SOCK=$T/var/vhdkitd.sock
start_daemon --idle-timeout 60
remote info "$D/r.vhdx" > /dev/null
r=$(call Vhdkit_Service ListOpenDisks '{}')
expect_rc 0 "$r"
[ "$(jf Paths "$r")" = "[\"$D/r.vhdx\"]" ] || fail "ListOpenDisks after one info: $r"
rc=0; (cd "$T" && "$VHDKIT" resize disks/r.vhdx --size 3G) 2> "$T/err" || rc=$?
[ $rc = 1 ] && grep -q '(32774)' "$T/err" || fail "a local resize of a disk vhdkitd holds: exit $rc, $(cat "$T/err")"
grep -q "; it is held by vhdkitd: use --connect $SOCK\$" "$T/err" || fail "the in-use error does not name the socket: $(cat "$T/err")"
rc=0; (cd "$T" && "$VHDKIT" rct checkpoint disks/r.vhdx) > "$T/out" 2> "$T/err" || rc=$?
[ $rc = 1 ] && grep -q "use --connect $SOCK" "$T/err" || fail "rct checkpoint: exit $rc, $(cat "$T/err")"
# A disk the daemon does not hold: no hint, the verb works.
(cd "$T" && "$VHDKIT" resize disks/l.vhdx --size 2G) || fail "a local resize of a disk vhdkitd does not hold failed"
# Through the socket the hint names, the verb works.
remote resize "$D/r.vhdx" --size 3G
stop_daemon
info "vhdkit --connect: every verb through vhdkitd as it runs locally"
