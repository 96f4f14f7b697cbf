#!/usr/bin/env bash
# make run: start vhdkitd in the foreground on defaults under ./var/ —
# root ./var/disks (with a small tracked sample disk), state in
# ./var/state, JSON door on the Unix socket ./var/vhdkitd.sock — and
# print commands to paste into another terminal.  Ctrl-C stops it
# cleanly (every disk flushed and closed).
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
VHDKIT=${VHDKIT:-$TOP/build/vhdkit}
VHDKITD=${VHDKITD:-$TOP/build/vhdkitd}
VAR=${VHDKIT_VAR:-$TOP/var}
for b in "$VHDKIT" "$VHDKITD"; do
  [ -x "$b" ] || { echo "run: $b not found; build with 'make'" >&2; exit 1; }
done
mkdir -p "$VAR/disks" "$VAR/state"
SAMPLE=$VAR/disks/sample.vhdx
if [ ! -e "$SAMPLE" ]; then
  "$VHDKIT" create "$SAMPLE" --size 1G >/dev/null
  { printf 'vhdkit sample disk\n'; head -c 493 /dev/zero; } | "$VHDKIT" write "$SAMPLE" --offset 0 >/dev/null
  "$VHDKIT" rct enable "$SAMPLE"
  "$VHDKIT" rct checkpoint "$SAMPLE" > "$VAR/sample.rctid"
  head -c 65536 /dev/zero | tr '\0' 'x' | "$VHDKIT" write "$SAMPLE" --offset $((512 << 20)) >/dev/null
fi
ID=$(cat "$VAR/sample.rctid")
SOCK=$VAR/vhdkitd.sock
U=http://localhost/root/virtualization/v2
cat <<MSG
vhdkitd: starting in the foreground (Ctrl-C stops it).  In another terminal:

  # the sample disk's settings
  curl -s --unix-socket $SOCK -X POST $U/Msvm_ImageManagementService/GetVirtualHardDiskSettingData \\
       -d '{"Path":"$SAMPLE"}'

  # what changed since its reference point (the write at 512 MiB)
  curl -s --unix-socket $SOCK -X POST $U/Msvm_ImageManagementService/GetVirtualDiskChanges \\
       -d '{"Path":"$SAMPLE","LimitId":"$ID","TargetSnapshotId":null,"ByteOffset":0,"ByteLength":1073741824}'

  # a new reference point, then the jobs
  curl -s --unix-socket $SOCK -X POST $U/Vhdkit_ChangeTrackingService/CreateReferencePoint -d '{"Path":"$SAMPLE"}'
  curl -s --unix-socket $SOCK $U/Msvm_ConcreteJob

Every method: docs/API.md.  The daemon: docs/vhdkitd.8.md.
MSG
exec "$VHDKITD" --foreground --root "$VAR/disks" --state-dir "$VAR/state" --socket "$SOCK"
