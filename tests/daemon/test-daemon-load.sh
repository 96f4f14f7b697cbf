#!/usr/bin/env bash
# vhdkitd under 100 concurrent clients (load.py), each on its own
# connection to the JSON door, for VHDKIT_LOAD_SECONDS (default 6):
# state, settings, tracking state and GetVirtualDiskChanges on shared
# disks (whose answer must be exactly the ranges written since the
# reference point), and ListOpenDisks, while conversion jobs run one
# after another, every other one cancelled at a random moment.  Every call must answer 200 with ReturnValue 0 and the
# right ranges; every client must get through; jobs complete or, when
# cancelled, end Terminated leaving nothing damaged; the daemon's RSS
# stays bounded and its descriptors return to what they were; it then
# stops cleanly.  `make soak` runs it for 5 minutes.  Also run under TSan (tests/run.sh).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/daemon-lib.sh"
D=$T/disks M=$((1 << 20))
"$VHDKIT" create "$D/a.vhdx" --size 1G >/dev/null
"$VHDKIT" rct enable "$D/a.vhdx"
ID=$("$VHDKIT" rct checkpoint "$D/a.vhdx")
head -c $((64 * 1024)) /dev/urandom | "$VHDKIT" write "$D/a.vhdx" --offset $M
head -c 4096 /dev/urandom | "$VHDKIT" write "$D/a.vhdx" --offset $((100 * M))
"$VHDKIT" create "$D/b.vhdx" --size 4G --block-size 32M >/dev/null
"$VHDKIT" create "$D/c.vhdx" --size 256M >/dev/null
head -c $((96 * M)) /dev/urandom | "$VHDKIT" write "$D/c.vhdx" --offset $((4 * M))

start_daemon
A=$D/a.vhdx
CH="{\"Path\":\"$A\",\"LimitId\":\"$ID\",\"TargetSnapshotId\":null,\"ByteOffset\":0,\"ByteLength\":1073741824}"
want='[1048576,104857600]'
# The expected answer, once, before the load.
call Msvm_ImageManagementService GetVirtualDiskChanges "$CH" > "$T/ch.json"
[ "$(jf ChangedByteOffsets < "$T/ch.json")" = "$want" ] || fail "GetVirtualDiskChanges before the load: $(cat "$T/ch.json")"

fds () { ls "/proc/$DPID/fd" | wc -l; }
rss_kb () { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$DPID/status"; }
# Every disk the calls and jobs use is open before the count is taken
# (the daemon keeps them until their idle timeout).
for p in "$D/b.vhdx" "$D/c.vhdx"; do
  call Msvm_ImageManagementService GetVirtualHardDiskSettingData "{\"Path\":\"$p\"}" > /dev/null
done
fd0=$(fds)

# Jobs, one after another, while the clients call; every other one is
# cancelled at a random moment (RequestStateChange 4): it ends Completed
# or Terminated, and what it leaves checks clean.
( n=0
  while [ ! -e "$T/stop-jobs" ]; do
    n=$((n + 1))
    r=$(call Msvm_ImageManagementService ConvertVirtualHardDisk \
        "{\"SourcePath\":\"$D/c.vhdx\",\"VirtualDiskSettingData\":{\"__CLASS\":\"Msvm_VirtualHardDiskSettingData\",\"Path\":\"$D/c-$n.vhdx\",\"Type\":2,\"Format\":3,\"MaxInternalSize\":0}}")
    j=$(jf Job "$r") || { echo "job $n: $r" >> "$T/jobs.bad"; break; }
    if [ $((n % 2)) = 0 ]; then
      sleep "0.0$((RANDOM % 10))"
      id=${j#*InstanceID=\"}; id=${id%\"}
      r=$(call Msvm_ConcreteJob RequestStateChange "{\"InstanceID\":\"$id\",\"RequestedState\":4,\"TimeoutPeriod\":null}")
      case $(jf ReturnValue "$r") in 0|4097) jf ReturnValue "$r" >> "$T/cancel.rc" ;; *) echo "cancel $n: $r" >> "$T/jobs.bad"; break ;; esac
    fi
    wait_job "$j" > "$T/job.json"
    case $(jf JobState < "$T/job.json") in
      7) echo x >> "$T/jobs.completed" ;;
      8) [ $((n % 2)) = 0 ] || { echo "job $n terminated unasked: $(cat "$T/job.json")" >> "$T/jobs.bad"; break; }
         echo x >> "$T/jobs.cancelled" ;;
      *) echo "job $n: $(cat "$T/job.json")" >> "$T/jobs.bad"; break ;;
    esac
    if [ -e "$D/c-$n.vhdx" ]; then
      "$VHDKIT" check "$D/c-$n.vhdx" > /dev/null 2>&1 || { echo "job $n left a damaged image" >> "$T/jobs.bad"; break; }
    fi
    rm -f "$D/c-$n.vhdx"
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
[ -e "$T/jobs.completed" ] || fail "no conversion job completed under load"
info "conversion jobs under load: $(wc -l < "$T/jobs.completed") completed, $(cat "$T/jobs.cancelled" 2>/dev/null | wc -l) cancelled; cancel answers: $(sort "$T/cancel.rc" 2>/dev/null | uniq -c | tr -s ' \n' ' ')"
kill -0 "$DPID" || fail "vhdkitd died under load"
# Bounded memory, and every connection's descriptor given back.
rss=$(rss_kb)
info "vhdkitd after the load: RSS $((rss / 1024)) MiB, $(fds) descriptors (before: $fd0)"
[ "$rss" -lt $((512 * 1024)) ] || fail "vhdkitd's RSS grew to $((rss / 1024)) MiB under load"
for i in $(seq 50); do [ "$(fds)" -le "$fd0" ] && break; sleep 0.2; done
[ "$(fds)" -le "$fd0" ] || fail "vhdkitd holds $(fds) descriptors after the load, $fd0 before: $(ls -l "/proc/$DPID/fd")"
call Msvm_ImageManagementService GetVirtualDiskChanges "$CH" > "$T/ch.json"
[ "$(jf ChangedByteOffsets < "$T/ch.json")" = "$want" ] || fail "GetVirtualDiskChanges after the load: $(cat "$T/ch.json")"
stop_daemon
