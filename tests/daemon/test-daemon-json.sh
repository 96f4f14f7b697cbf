#!/usr/bin/env bash
# vhdkitd's JSON door with curl over the Unix socket: every method of the
# table, against the CLI's answers on the same files; jobs (polled,
# cancelled, surviving a restart, cut short by kill -9 -> 32771); SIGTERM.
# The disks are closed by the daemon after 1 s idle (--idle-timeout 1) so
# that the CLI can write them between calls.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/daemon-lib.sh"
IMS=Msvm_ImageManagementService CTS=Vhdkit_ChangeTrackingService VSS=Vhdkit_VHDSetService
D=$T/disks
M=$((1 << 20)) G=$((1 << 30))

start_daemon --idle-timeout 1

# Wait until the daemon has closed every disk (idle), so the CLI may write.
idle () { sleep 2.5; }

# ---- CreateVirtualHardDisk (a job) ----
sd () {  # sd PATH TYPE SIZE [PARENT]
  printf '{"VirtualDiskSettingData":{"__CLASS":"Msvm_VirtualHardDiskSettingData","Path":"%s","Type":%s,"Format":3,"MaxInternalSize":%s,"BlockSize":0,"LogicalSectorSize":0,"PhysicalSectorSize":0,"ParentPath":"%s"}}' \
    "$1" "$2" "$3" "${4:-}"
}
r=$(call $IMS CreateVirtualHardDisk "$(sd "$D/a.vhdx" 3 $G)")
expect_rc 4096 "$r"
job=$(wait_job "$(jf Job "$r")")
[ "$(jf JobState "$job")" = 7 ] || fail "create job did not complete: $job"
[ "$(jf PercentComplete "$job")" = 100 ] || fail "a completed job is not at 100 %: $job"
[ -f "$D/a.vhdx" ] || fail "the job completed but $D/a.vhdx does not exist"
"$VHDKIT" check "$D/a.vhdx" >/dev/null

# ---- settings and state, against vhdkit info ----
r=$(call $IMS GetVirtualHardDiskSettingData "{\"Path\":\"$D/a.vhdx\"}")
expect_rc 0 "$r"
idle
info=$("$VHDKIT" info "$D/a.vhdx" --json)
for f in MaxInternalSize BlockSize LogicalSectorSize PhysicalSectorSize VirtualDiskId Type Format; do
  [ "$(jf "SettingData.$f" "$r")" = "$(jf "$f" "$info")" ] || fail "SettingData.$f differs from vhdkit info: $r / $info"
done
r=$(call $IMS GetVirtualHardDiskState "{\"Path\":\"$D/a.vhdx\"}")
expect_rc 0 "$r"
for f in FileSize MinInternalSize PhysicalSectorSize FragmentationPercentage Alignment; do
  [ "$(jf "State.$f" "$r")" = "$(jf "$f" "$info")" ] || fail "State.$f differs from vhdkit info: $r / $info"
done
[ "$(jf State.InUse "$r")" = true ] || fail "State.InUse is not true for a disk the daemon holds: $r"

# ---- change tracking and GetVirtualDiskChanges, against vhdkit changes ----
expect_rc 0 "$(call $CTS SetChangeTracking "{\"Path\":\"$D/a.vhdx\",\"Enabled\":true,\"Granularity\":null}")"
r=$(call $CTS CreateReferencePoint "{\"Path\":\"$D/a.vhdx\"}")
expect_rc 0 "$r"
id=$(jf ResilientChangeTrackingId "$r")
case $id in rctX:*) ;; *) fail "not an RCT ID: $r" ;; esac
r=$(call $CTS GetChangeTrackingState "{\"Path\":\"$D/a.vhdx\"}")
expect_rc 0 "$r"
[ "$(jf Enabled "$r")" = true ] && [ "$(jf MostRecentId "$r")" = "$id" ] && [ "$(jf NewerChanges "$r")" = false ] ||
  fail "tracking state after a reference point: $r"
idle
head -c $((3 * M)) /dev/urandom > "$T/data"
"$VHDKIT" write "$D/a.vhdx" --offset $((100 * M)) < "$T/data"
"$VHDKIT" write "$D/a.vhdx" --offset $((700 * M + 4096)) --length 8192 --zero
want=$("$VHDKIT" changes "$D/a.vhdx" --limit-id "$id" --all --json)
r=$(call $IMS GetVirtualDiskChanges "{\"Path\":\"$D/a.vhdx\",\"LimitId\":\"$id\",\"TargetSnapshotId\":null,\"ByteOffset\":0,\"ByteLength\":$G}")
expect_rc 0 "$r"
for f in ProcessedByteLength ChangedByteOffsets ChangedByteLengths; do
  [ "$(jf "$f" "$r")" = "$(jf "$f" "$want")" ] || fail "$f differs from vhdkit changes: $r / $want"
done
[ "$(jf 'ChangedByteOffsets[0]' "$r")" = $((100 * M)) ] || fail "the write at 100 MiB is not the first change: $r"
[ "$(jf Job "$r")" = null ] || fail "a quick GetVirtualDiskChanges returned a job: $r"
r=$(call $CTS GetChangeTrackingState "{\"Path\":\"$D/a.vhdx\"}")
[ "$(jf NewerChanges "$r")" = true ] || fail "NewerChanges is false after writes: $r"
# Bad IDs: the contract's codes.
expect_rc 32773 "$(call $IMS GetVirtualDiskChanges "{\"Path\":\"$D/a.vhdx\",\"LimitId\":\"nonsense\",\"TargetSnapshotId\":null,\"ByteOffset\":0,\"ByteLength\":$G}")"
expect_rc 32773 "$(call $IMS GetVirtualDiskChanges "{\"Path\":\"$D/a.vhdx\",\"LimitId\":\"$id\",\"TargetSnapshotId\":null,\"ByteOffset\":0,\"ByteLength\":$((2 * G))}")"

# ---- Validate (job), Resize (job) ----
job=$(wait_job "$(jf Job "$(call $IMS ValidateVirtualHardDisk "{\"Path\":\"$D/a.vhdx\"}")")")
[ "$(jf JobState "$job")" = 7 ] || fail "validate of a sound disk: $job"
printf 'garbage' > "$D/bad.vhdx"
job=$(wait_job "$(jf Job "$(call $IMS ValidateVirtualHardDisk "{\"Path\":\"$D/bad.vhdx\"}")")")
[ "$(jf JobState "$job")" = 10 ] && [ "$(jf ErrorCode "$job")" != 0 ] && [ -n "$(jf ErrorDescription "$job")" ] ||
  fail "validate of garbage did not fail with a description: $job"
r=$(call Msvm_ConcreteJob GetError "{\"InstanceID\":\"$(jf InstanceID "$job")\"}")
expect_rc 0 "$r"
[ "$(jf Error.__CLASS "$r")" = Msvm_Error ] && [ -n "$(jf Error.Message "$r")" ] || fail "GetError: $r"
job=$(wait_job "$(jf Job "$(call $IMS ResizeVirtualHardDisk "{\"Path\":\"$D/a.vhdx\",\"MaxInternalSize\":$((2 * G))}")")")
[ "$(jf JobState "$job")" = 7 ] || fail "resize job: $job"
r=$(call $IMS GetVirtualHardDiskSettingData "{\"Path\":\"$D/a.vhdx\"}")
[ "$(jf SettingData.MaxInternalSize "$r")" = $((2 * G)) ] || fail "the size after resize: $r"

# ---- Convert (job): same content ----
job=$(wait_job "$(jf Job "$(call $IMS ConvertVirtualHardDisk "{\"SourcePath\":\"$D/a.vhdx\",$(sd "$D/c.vhdx" 3 0 | sed 's/^{//; s/}$//')}")")")
[ "$(jf JobState "$job")" = 7 ] || fail "convert job: $job"
idle
[ "$(vhdkit_sha "$D/a.vhdx")" = "$(vhdkit_sha "$D/c.vhdx")" ] || fail "the converted disk reads differently"

# ---- differencing: create (job) and merge (job) ----
job=$(wait_job "$(jf Job "$(call $IMS CreateVirtualHardDisk "$(sd "$D/child.avhdx" 4 0 "$D/c.vhdx")")")")
[ "$(jf JobState "$job")" = 7 ] || fail "differencing create: $job"
idle
"$VHDKIT" write "$D/child.avhdx" --offset $((5 * M)) < "$T/data"
want=$(vhdkit_sha "$D/child.avhdx")
job=$(wait_job "$(jf Job "$(call $IMS MergeVirtualHardDisk "{\"SourcePath\":\"$D/child.avhdx\",\"DestinationPath\":\"$D/c.vhdx\"}")")")
[ "$(jf JobState "$job")" = 7 ] || fail "merge: $job"
[ "$(vhdkit_sha "$D/c.vhdx")" = "$want" ] || fail "the parent after the merge does not read as the child did"

# ---- VHD Sets ----
job=$(wait_job "$(jf Job "$(call $IMS ConvertVirtualHardDiskToVHDSet "{\"VirtualHardDiskPath\":\"$D/c.vhdx\"}")")")
[ "$(jf JobState "$job")" = 7 ] || fail "convert to a set: $job"
[ -f "$D/c.vhds" ] || fail "no $D/c.vhds after ConvertVirtualHardDiskToVHDSet"
r=$(call $VSS TakeSnapshot "{\"VHDSetPath\":\"$D/c.vhds\"}")
expect_rc 0 "$r"
s1=$(jf SnapshotId "$r")
r=$(call $IMS GetVHDSetInformation "{\"VHDSetPath\":\"$D/c.vhds\",\"AdditionalInformation\":[2]}")
expect_rc 0 "$r"
[ "$(jf 'Information.SnapshotIdList[0]' "$r")" = "$s1" ] || fail "the set's snapshot list: $r"
[ "$(jf Information.AllPaths "$r")" != "[]" ] || fail "AllPaths empty though asked for: $r"
want=$("$VHDKIT" set info "$D/c.vhds" --json)
r=$(call $IMS GetVHDSnapshotInformation "{\"VHDSetPath\":\"$D/c.vhds\",\"SnapshotIds\":null,\"AdditionalInformation\":[2]}")
expect_rc 0 "$r"
[ "$(jf 'SnapshotInformation[0].SnapshotId' "$r")" = "$s1" ] || fail "snapshot information: $r"
ct=$(jf 'SnapshotInformation[0].CreationTime' "$r")
[ ${#ct} = 25 ] || fail "CreationTime is not a CIM datetime: $ct"
r=$(call $IMS SetVHDSnapshotInformation "{\"Information\":{\"__CLASS\":\"Msvm_VHDSnapshotInformation\",\"FilePath\":\"$D/c.vhds\",\"SnapshotId\":\"$s1\",\"CreationTime\":\"20200101000000.000000+000\"}}")
expect_rc 0 "$r"
r=$(call $IMS GetVHDSnapshotInformation "{\"VHDSetPath\":\"$D/c.vhds\",\"SnapshotIds\":[\"$s1\"],\"AdditionalInformation\":null}")
[ "$(jf 'SnapshotInformation[0].CreationTime' "$r")" = 20200101000000.000000+000 ] || fail "CreationTime not changed: $r"
# Changes of the set since the snapshot: the daemon holds the leaf open.
idle
"$VHDKIT" write "$D/c.vhds" --offset $((20 * M)) < "$T/data"
want=$("$VHDKIT" changes "$D/c.vhds" --limit-id "$s1" --all --json)
r=$(call $IMS GetVirtualDiskChanges "{\"Path\":\"$D/c.vhds\",\"LimitId\":\"$s1\",\"TargetSnapshotId\":\"\",\"ByteOffset\":0,\"ByteLength\":$((2 * G))}")
expect_rc 0 "$r"
[ "$(jf ChangedByteOffsets "$r")" = "$(jf ChangedByteOffsets "$want")" ] || fail "set changes differ from the CLI: $r / $want"
r=$(call $VSS TakeSnapshot "{\"VHDSetPath\":\"$D/c.vhds\"}")
s2=$(jf SnapshotId "$r")
expect_rc 0 "$(call $VSS ApplySnapshot "{\"VHDSetPath\":\"$D/c.vhds\",\"SnapshotId\":\"$s1\"}")"
job=$(wait_job "$(jf Job "$(call $IMS DeleteVHDSnapshot "{\"VHDSetPath\":\"$D/c.vhds\",\"SnapshotId\":\"$s2\",\"PersistReferenceSnapshot\":false}")")")
[ "$(jf JobState "$job")" = 7 ] || fail "delete snapshot: $job"
job=$(wait_job "$(jf Job "$(call $IMS OptimizeVHDSet "{\"VHDSetPath\":\"$D/c.vhds\"}")")")
[ "$(jf JobState "$job")" = 7 ] || fail "optimize: $job"
idle
"$VHDKIT" check "$D/c.vhds" >/dev/null || fail "the set does not check clean"

# ---- a job cancelled while it runs: converting 1 GiB of data ----
{ yes vhdkit || true; } | head -c $G > "$D/data.img"
r=$(call $IMS ConvertVirtualHardDisk "{\"SourcePath\":\"$D/data.img\",$(sd "$D/big.vhdx" 3 0 | sed 's/^{//; s/}$//')}")
expect_rc 4096 "$r"
jid=$(jf Job "$r"); jid=${jid#*InstanceID=\"}; jid=${jid%\"}
sleep 0.3
r=$(call Msvm_ConcreteJob RequestStateChange "{\"InstanceID\":\"$jid\",\"RequestedState\":4,\"TimeoutPeriod\":null}")
job=$(wait_job "$jid")
case $(jf ReturnValue "$r")/$(jf JobState "$job") in
  0/8) [ "$(jf ErrorCode "$job")" != 0 ] || fail "a terminated job has ErrorCode 0: $job"
       [ "$(jf PercentComplete "$job")" -lt 100 ] || fail "a terminated job at 100 %: $job" ;;
  4097/7) fail "the 1 GiB convert finished within 0.3 s: the cancel was not tested" ;;
  *) fail "cancel: $r / $job" ;;
esac
if [ -e "$D/big.vhdx" ]; then "$VHDKIT" check "$D/big.vhdx" >/dev/null || fail "a cancelled convert left a damaged file"; fi
# A second cancel of an ended job: Invalid State Transition.
expect_rc 4097 "$(call Msvm_ConcreteJob RequestStateChange "{\"InstanceID\":\"$jid\",\"RequestedState\":4,\"TimeoutPeriod\":null}")"

# ---- jobs survive a restart; a job cut short by kill -9 reports 32771 ----
stop_daemon
start_daemon --idle-timeout 1
j=$(curl -sS --unix-socket "$SOCK" "http://localhost/$NS/Msvm_ConcreteJob/$jid")
[ "$(jf InstanceID "$j")" = "$jid" ] || fail "the job did not survive a restart: $j"
r=$(call $IMS ConvertVirtualHardDisk "{\"SourcePath\":\"$D/data.img\",$(sd "$D/big2.vhdx" 3 0 | sed 's/^{//; s/}$//')}")
jid=$(jf Job "$r"); jid=${jid#*InstanceID=\"}; jid=${jid%\"}
sleep 0.3
kill -KILL "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=
start_daemon --idle-timeout 1
j=$(curl -sS --unix-socket "$SOCK" "http://localhost/$NS/Msvm_ConcreteJob/$jid")
[ "$(jf JobState "$j")" = 10 ] && [ "$(jf ErrorCode "$j")" = 32771 ] || fail "a job cut short by kill -9, after restart: $j"
stop_daemon
info "JSON door: every method answered as the CLI does"
