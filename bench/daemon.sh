#!/usr/bin/env bash
# bench/daemon.sh: vhdkitd benchmarks.  Every figure is a ratio between
# measurements of the same run, or a rate with the load average it was
# measured at (this machine is noisy and shared).  Results: stdout and
# bench/results/daemon-<date>.txt.
#
#  1. GetVirtualDiskChanges through the service: BENCH_CHANGES (default
#     100000) scattered changed 4 KiB blocks on a BENCH_SIZE (default
#     64T) dynamic VHDX
#     (64 KiB granularity, bench/rctgen.c), the whole disk asked for in
#     one call.  hyperfine medians, three rounds, of: `vhdkit changes
#     --all` on a copy of the image (the library, no service), the same
#     call as JSON over the Unix socket (curl), as CIM-XML over TCP
#     (curl POST of the METHODCALL to /cimom), and the anchor: the same
#     blocks written with qemu-io into a qcow2 with a 64 KiB persistent
#     dirty bitmap, read with `nbdinfo --map=qemu:dirty-bitmap:b0` from
#     qemu-nbd.  Every answer must hold the same ranges.
#  2. GetVirtualHardDiskState under 16 concurrent clients
#     (tests/daemon/load.py, each on its own connection, BENCH_SECONDS
#     each, default 10): calls per second and p50/p99 latency, idle and
#     while conversion jobs run one after another; three rounds each.
#
# Environment: BENCH_DIR (scratch, default /var/tmp/vhdkit-bench-daemon),
# BENCH_RUNS (hyperfine runs, default 5), BENCH_CHANGES, BENCH_SIZE (the
# virtual size, with a K/M/G/T suffix; default 64T), BENCH_SECONDS.
{
set -euo pipefail
shopt -s inherit_errexit
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${BENCH_DIR:-/var/tmp/vhdkit-bench-daemon}
runs=${BENCH_RUNS:-5}
nchg=${BENCH_CHANGES:-100000}
secs=${BENCH_SECONDS:-10}
size_arg=${BENCH_SIZE:-64T}
size=$(numfmt --from=iec "$size_arg") || { echo "bench: BENCH_SIZE=$size_arg is not a size"; exit 1; }
for c in qemu-img qemu-io qemu-nbd nbdinfo hyperfine python3 curl cc; do
  command -v $c >/dev/null || { echo "bench: $c missing (scripts/install-deps.sh installs it)"; exit 1; }
done
make -C "$top" -s -q build/vhdkit build/vhdkitd build/libvhdkit.a 2>/dev/null ||
  { echo "bench: build/ is missing or older than the sources: run make first"; exit 1; }
rm -rf "$dir"; mkdir -p "$dir/disks" "$dir/state" "$top/bench/results"
cp "$top/build/vhdkit" "$top/build/vhdkitd" "$dir/"
V=$dir/vhdkit VD=$dir/vhdkitd
cc -std=c11 -O2 -Wall -Wextra -D_GNU_SOURCE -I"$top/include" "$top/bench/rctgen.c" "$top/build/libvhdkit.a" -pthread -o "$dir/rctgen"
G=$dir/rctgen
rev=$(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)
out=$top/bench/results/daemon-$(date +%Y%m%d-%H%M%S).txt
say () { echo "$*" | tee -a "$out"; }
load () { cut -d' ' -f1-3 /proc/loadavg; }
dpid= nbd_pid=
cleanup () {
  [ -z "$dpid" ] || { kill "$dpid" 2>/dev/null || true; wait "$dpid" 2>/dev/null || true; }
  [ -z "$nbd_pid" ] || { kill "$nbd_pid" 2>/dev/null || true; wait "$nbd_pid" 2>/dev/null || true; }
  rm -rf "$dir"
}
trap cleanup EXIT
say "# vhdkit daemon bench $(date -u +%FT%TZ) on $(nproc) cores; $("$V" --version) ($rev); $(qemu-img --version | sed -n 1p); $(nbdinfo --version | sed -n 1p)"
say "# load average at the start: $(load)"

# ---- the images ----------------------------------------------------------
D=$dir/disks/q.vhdx
"$G" offsets "$size" "$nchg" 42 > "$dir/off.txt"
"$V" create "$D" --size "$size" >/dev/null
"$V" rct enable "$D" --granularity 64K >/dev/null
id=$("$V" rct checkpoint "$D")
"$G" write "$D" "$dir/off.txt" 10000 >/dev/null
cp --sparse=always "$D" "$dir/lib.vhdx"
cp --sparse=always "$D.rct" "$dir/lib.vhdx.rct"
cp --sparse=always "$D.mrt" "$dir/lib.vhdx.mrt" 2>/dev/null || true
qc=$dir/q.qcow2
qemu-img create -q -f qcow2 "$qc" "$size"
qemu-img bitmap --add -g 65536 "$qc" b0
awk '{ print "write -q " $1 " 4k" }' "$dir/off.txt" | qemu-io -f qcow2 -t unsafe "$qc" > "$dir/qemu-io.log" 2>&1
sync

# ---- the service and qemu-nbd ---------------------------------------------
PW=bench-$(head -c 9 /dev/urandom | base64 | tr '+/' '-_')
printf '%s\n' "$PW" | "$VD" --hash-password admin > "$dir/creds"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sock=$dir/vhdkitd.sock
"$VD" --foreground --root "$dir/disks" --state-dir "$dir/state" --socket "$sock" \
  --listen "127.0.0.1:$port" --credentials "$dir/creds" --idle-timeout 3600 2> "$dir/vhdkitd.log" &
dpid=$!
for ((t = 0; t < 100; t++)); do grep -q 'ready:' "$dir/vhdkitd.log" && break; sleep 0.1; done
grep -q 'ready:' "$dir/vhdkitd.log" || { say "vhdkitd did not start: $(cat "$dir/vhdkitd.log")"; exit 1; }
nsock=$dir/nbd.sock
qemu-nbd -r -t -B b0 -k "$nsock" -f qcow2 "$qc" > "$dir/qemu-nbd.log" 2>&1 &
nbd_pid=$!
for ((t = 0; t < 600; t++)); do [ -S "$nsock" ] && break; sleep 0.1; done
uri="nbd+unix:///?socket=$nsock"

U=http://localhost/root/virtualization/v2/Msvm_ImageManagementService/GetVirtualDiskChanges
printf '{"Path":"%s","LimitId":"%s","TargetSnapshotId":null,"ByteOffset":0,"ByteLength":%d}' "$D" "$id" "$size" > "$dir/body.json"
host=$(hostname)
cat > "$dir/body.xml" <<XML
<?xml version="1.0" encoding="utf-8" ?><CIM CIMVERSION="2.0" DTDVERSION="2.0"><MESSAGE ID="1" PROTOCOLVERSION="1.0"><SIMPLEREQ><METHODCALL NAME="GetVirtualDiskChanges"><LOCALINSTANCEPATH><LOCALNAMESPACEPATH><NAMESPACE NAME="root"/><NAMESPACE NAME="virtualization"/><NAMESPACE NAME="v2"/></LOCALNAMESPACEPATH><INSTANCENAME CLASSNAME="Msvm_ImageManagementService"><KEYBINDING NAME="CreationClassName"><KEYVALUE VALUETYPE="string">Msvm_ImageManagementService</KEYVALUE></KEYBINDING><KEYBINDING NAME="Name"><KEYVALUE VALUETYPE="string">vhdsvc</KEYVALUE></KEYBINDING><KEYBINDING NAME="SystemCreationClassName"><KEYVALUE VALUETYPE="string">Msvm_ComputerSystem</KEYVALUE></KEYBINDING><KEYBINDING NAME="SystemName"><KEYVALUE VALUETYPE="string">$host</KEYVALUE></KEYBINDING></INSTANCENAME></LOCALINSTANCEPATH><PARAMVALUE NAME="Path"><VALUE>$D</VALUE></PARAMVALUE><PARAMVALUE NAME="LimitId"><VALUE>$id</VALUE></PARAMVALUE><PARAMVALUE NAME="ByteOffset"><VALUE>0</VALUE></PARAMVALUE><PARAMVALUE NAME="ByteLength"><VALUE>$size</VALUE></PARAMVALUE></METHODCALL></SIMPLEREQ></MESSAGE></CIM>
XML
json_cmd="curl -sS --unix-socket $sock -X POST $U --data-binary @$dir/body.json -o $dir/ans.json"
cim_cmd="curl -sS -u admin:$PW -H 'Content-Type: application/xml; charset=utf-8' -H 'CIMOperation: MethodCall' -H 'CIMMethod: GetVirtualDiskChanges' -H 'CIMObject: root%2Fvirtualization%2Fv2%3AMsvm_ImageManagementService' --data-binary @$dir/body.xml -o $dir/ans.xml http://127.0.0.1:$port/cimom"
lib_cmd="$V changes $dir/lib.vhdx --limit-id $id --all"
nbd_cmd="nbdinfo --map=qemu:dirty-bitmap:b0 $uri"

# The answers first: all four must hold the same ranges.
$lib_cmd > "$dir/lib.txt"
bash -c "$json_cmd"; bash -c "$cim_cmd"
$nbd_cmd > "$dir/nbd.txt"
python3 - "$dir" <<'PY' | tee -a "$out"
import json, re, sys
d = sys.argv[1]
lib = [tuple(map(int, l.split()[:2])) for l in open(d + '/lib.txt') if l.strip()]
j = json.load(open(d + '/ans.json'))
js = list(zip(j['ChangedByteOffsets'], j['ChangedByteLengths']))
x = open(d + '/ans.xml').read()
def arr(name):
    m = re.search(r'<PARAMVALUE NAME="%s"[^>]*><VALUE.ARRAY>(.*?)</VALUE.ARRAY>' % name, x, re.S)
    return [int(v) for v in re.findall(r'<VALUE>(\d+)</VALUE>', m.group(1))] if m else None
cx = list(zip(arr('ChangedByteOffsets') or [], arr('ChangedByteLengths') or []))
nbd = []
for l in open(d + '/nbd.txt'):
    f = l.split()
    if len(f) >= 3 and f[2] == '1':
        o, n = int(f[0]), int(f[1])
        if nbd and nbd[-1][0] + nbd[-1][1] == o: nbd[-1] = (nbd[-1][0], nbd[-1][1] + n)
        else: nbd.append((o, n))
same = lib == js == cx == nbd
print("answers: library %d ranges, JSON %d, CIM-XML %d, nbdinfo %d dirty extents; identical: %s"
      % (len(lib), len(js), len(cx), len(nbd), same))
sys.exit(0 if same and lib else 1)
PY

say "== 1. GetVirtualDiskChanges, $nchg scattered 4 KiB changes on $size_arg (64 KiB granularity), whole disk in one call"
for round in 1 2 3; do
  l0=$(load)
  hyperfine -N -w 1 -r "$runs" --export-json "$dir/h$round.json" \
    "$lib_cmd" "$json_cmd" "$cim_cmd" "$nbd_cmd" > /dev/null
  say "#   round $round: load $l0 -> $(load)"
done
python3 - "$dir" <<'PY' | tee -a "$out"
import json, statistics, sys
d = sys.argv[1]
rs = [[x['median'] for x in json.load(open('%s/h%d.json' % (d, r)))['results']] for r in (1, 2, 3)]
def med(f):
    v = [f(*t) for t in rs]
    return statistics.median(v), ', '.join('%.2f' % x for x in v)
for name, f in (('JSON / library', lambda l, j, c, n: j / l),
                ('CIM-XML / library', lambda l, j, c, n: c / l),
                ('CIM-XML / JSON', lambda l, j, c, n: c / j),
                ('nbdinfo / JSON (anchor: >1 means the service is faster)', lambda l, j, c, n: n / j),
                ('nbdinfo / CIM-XML', lambda l, j, c, n: n / c)):
    m, v = med(f)
    print('%-58s %6.2fx   (rounds: %s)' % (name, m, v))
PY

# ---- 2. GetVirtualHardDiskState under 16 clients -----------------------------
say "== 2. GetVirtualHardDiskState, 16 clients on their own connections, ${secs} s per run"
"$V" create "$dir/disks/c.vhdx" --size 256M >/dev/null
head -c $((32 << 20)) /dev/urandom | "$V" write "$dir/disks/c.vhdx" --offset 0 >/dev/null
state_call="Msvm_ImageManagementService/GetVirtualHardDiskState={\"Path\":\"$D\"}"
jobs_loop () {
  local n=0 r j
  while [ ! -e "$dir/stop" ]; do
    n=$((n + 1))
    r=$(curl -sS --unix-socket "$sock" -X POST http://localhost/root/virtualization/v2/Msvm_ImageManagementService/ConvertVirtualHardDisk \
        -d "{\"SourcePath\":\"$dir/disks/c.vhdx\",\"VirtualDiskSettingData\":{\"__CLASS\":\"Msvm_VirtualHardDiskSettingData\",\"Path\":\"$dir/disks/f.vhdx\",\"Type\":2,\"Format\":3,\"MaxInternalSize\":0}}")
    j=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["Job"].split("\"")[1])' "$r")
    while curl -sS --unix-socket "$sock" "http://localhost/root/virtualization/v2/Msvm_ConcreteJob/$j" | grep -q '"JobState":4,'; do sleep 0.05; done
    rm -f "$dir/disks/f.vhdx"
    echo $n > "$dir/jobs.done"
  done
}
for round in 1 2 3; do
  for mode in idle jobs; do
    rm -f "$dir/stop" "$dir/jobs.done"
    jp=
    if [ $mode = jobs ]; then jobs_loop & jp=$!; sleep 0.5; fi
    l0=$(load)
    python3 "$top/tests/daemon/load.py" "$sock" --clients 16 --seconds "$secs" --call "$state_call" > "$dir/l-$mode-$round.json"
    touch "$dir/stop"; [ -z "$jp" ] || wait "$jp"
    python3 - "$dir/l-$mode-$round.json" "$mode" "$round" "$l0" "$(load)" "$(cat "$dir/jobs.done" 2>/dev/null || echo 0)" <<'PY' | tee -a "$out"
import json, sys
r = json.load(open(sys.argv[1]))
print('  round %s %-4s: %7.0f calls/s, p50 %6.2f ms, p99 %6.2f ms, bad %d; jobs completed %s; load %s -> %s'
      % (sys.argv[3], sys.argv[2], r['calls_per_second'], r['ms']['p50'], r['ms']['p99'], r['bad'], sys.argv[6], sys.argv[4], sys.argv[5]))
PY
  done
done
python3 - "$dir" <<'PY' | tee -a "$out"
import json, statistics, sys
d = sys.argv[1]
g = lambda m, k: [json.load(open('%s/l-%s-%d.json' % (d, m, r)))[k] for r in (1, 2, 3)]
rps_i, rps_j = g('idle', 'calls_per_second'), g('jobs', 'calls_per_second')
p99_i = [x['p99'] for x in g('idle', 'ms')]; p99_j = [x['p99'] for x in g('jobs', 'ms')]
print('median of 3: idle %.0f calls/s, p99 %.2f ms; with jobs running %.0f calls/s, p99 %.2f ms; '
      'p99 with jobs / idle %.2fx' % (statistics.median(rps_i), statistics.median(p99_i), statistics.median(rps_j),
                                      statistics.median(p99_j), statistics.median(p99_j) / statistics.median(p99_i)))
PY
say "# load average at the end: $(load)"
echo "results: $out"
exit 0
}
