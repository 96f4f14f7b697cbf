#!/usr/bin/env bash
# vhdkitd under 100 concurrent clients (load.py), each on its own
# connection to the JSON door, for VHDKIT_LOAD_SECONDS (default 6):
# state, settings, tracking state and GetVirtualDiskChanges on shared
# disks (whose answer must be exactly the ranges written since the
# reference point), and ListOpenDisks, while conversion jobs run one
# after another.  Every call must answer 200 with ReturnValue 0 and the
# right ranges; every client must get through; the jobs complete; the
# daemon then stops cleanly.  Also run under TSan (tests/run.sh).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/daemon-lib.sh"
D=$T/disks M=$((1 << 20))
"$VHDKIT" create "$D/a.vhdx" --size 1G >/dev/null
"$VHDKIT" rct enable "$D/a.vhdx"
ID=$("$VHDKIT" rct checkpoint "$D/a.vhdx")
head -c $((64 * 1024)) /dev/urandom | "$VHDKIT" write "$D/a.vhdx" --offset $M
head -c 4096 /dev/urandom | "$VHDKIT" write "$D/a.vhdx" --offset $((100 * M))
"$VHDKIT" create "$D/b.vhdx" --size 4G --block-size 32M >/dev/null
"$VHDKIT" create "$D/c.vhdx" --size 64M >/dev/null
head -c $((8 * M)) /dev/urandom | "$VHDKIT" write "$D/c.vhdx" --offset $((4 * M))

start_daemon
A=$D/a.vhdx
CH="{\"Path\":\"$A\",\"LimitId\":\"$ID\",\"TargetSnapshotId\":null,\"ByteOffset\":0,\"ByteLength\":1073741824}"
want='[1048576, 104857600]'
# The expected answer, once, before the load.
call Msvm_ImageManagementService GetVirtualDiskChanges "$CH" > "$T/ch.json"
[ "$(jf ChangedByteOffsets < "$T/ch.json")" = "$want" ] || fail "GetVirtualDiskChanges before the load: $(cat "$T/ch.json")"

# Jobs, one after another, while the clients call.
( n=0
  while [ ! -e "$T/stop-jobs" ]; do
    n=$((n + 1))
    r=$(call Msvm_ImageManagementService ConvertVirtualHardDisk \
        "{\"SourcePath\":\"$D/c.vhdx\",\"VirtualDiskSettingData\":{\"__CLASS\":\"Msvm_VirtualHardDiskSettingData\",\"Path\":\"$D/c-$n.vhdx\",\"Type\":2,\"Format\":3,\"MaxInternalSize\":0}}")
    j=$(jf Job "$r") || { echo "job $n: $r" >> "$T/jobs.bad"; break; }
    wait_job "$j" > "$T/job.json"
    grep -q '"JobState":7,' "$T/job.json" || { echo "job $n: $(cat "$T/job.json")" >> "$T/jobs.bad"; break; }
    rm -f "$D/c-$n.vhdx"
    echo "$n" > "$T/jobs.done"
  done ) &
JP=$!

secs=${VHDKIT_LOAD_SECONDS:-6}
"$PY" "$(dirname "$0")/load.py" "$SOCK" --clients 100 --seconds "$secs" \
  --call "Msvm_ImageManagementService/GetVirtualHardDiskState={\"Path\":\"$A\"}" \
  --call "Msvm_ImageManagementService/GetVirtualDiskChanges=$CH=>ChangedByteOffsets=$want" \
  --call "Vhdkit_ChangeTrackingService/GetChangeTrackingState={\"Path\":\"$A\"}=>Enabled=true" \
  --call "Msvm_ImageManagementService/GetVirtualHardDiskSettingData={\"Path\":\"$D/b.vhdx\"}=>SettingData.BlockSize=33554432" \
  --call "Vhdkit_Service/ListOpenDisks={}" > "$T/load.json" || rc=$?
touch "$T/stop-jobs"
wait "$JP" || true
cat "$T/load.json"
[ "${rc:-0}" = 0 ] || fail "calls under load went wrong: $(cat "$T/load.json")"
"$PY" - "$T/load.json" <<'PY' || fail "too few calls under load"
import json, sys
r = json.load(open(sys.argv[1]))
# Every client got through more than once.
sys.exit(0 if r['calls'] >= 2 * r['clients'] and not r['connect_errors'] else 1)
PY
[ ! -e "$T/jobs.bad" ] || fail "a job under load failed: $(cat "$T/jobs.bad")"
[ -e "$T/jobs.done" ] || fail "no conversion job completed under load"
info "conversion jobs completed under load: $(cat "$T/jobs.done")"
kill -0 "$DPID" || fail "vhdkitd died under load"
call Msvm_ImageManagementService GetVirtualDiskChanges "$CH" > "$T/ch.json"
[ "$(jf ChangedByteOffsets < "$T/ch.json")" = "$want" ] || fail "GetVirtualDiskChanges after the load: $(cat "$T/ch.json")"
stop_daemon
