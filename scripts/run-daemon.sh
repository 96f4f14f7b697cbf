#!/usr/bin/env bash
# make run: start vhdkitd in the foreground on defaults under ./var/ —
# root ./var/disks (with a small tracked sample disk), state in
# ./var/state, the JSON door on the Unix socket ./var/vhdkitd.sock, and
# both doors (JSON and CIM-XML) on TCP 127.0.0.1:5988 (VHDKIT_PORT to
# change) for the user "admin" and a bearer token, whose secrets are
# generated on the first run and printed that once (delete
# ./var/state/credentials for new ones) — and print curl, wbemcli and
# vhdkit --connect commands to paste into another terminal.  Ctrl-C stops
# it cleanly (every disk flushed and closed).
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
PORT=${VHDKIT_PORT:-5988}
CREDS=$VAR/state/credentials
U=http://localhost/root/virtualization/v2
PW='PASSWORD' TOKEN='TOKEN'
if [ ! -e "$CREDS" ]; then
  PW=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
  ( umask 077
    printf '%s\n' "$PW" | "$VHDKITD" --hash-password admin > "$CREDS.new"
    { read -r TOKEN; read -r entry; } < <("$VHDKITD" --new-token backup)
    echo "$entry" >> "$CREDS.new"
    echo "$TOKEN" > "$CREDS.token-once" )
  TOKEN=$(cat "$CREDS.token-once"); rm -f "$CREDS.token-once"
  mv "$CREDS.new" "$CREDS"
  cat <<MSG
vhdkitd: new credentials for TCP 127.0.0.1:$PORT, shown only this once
(only their hashes are kept, in $CREDS):
  user admin      password $PW
  token backup    $TOKEN

MSG
else
  echo "vhdkitd: TCP credentials from $CREDS (their secrets were shown on the first run;"
  echo "delete that file for new ones).  Below, put them in place of PASSWORD and TOKEN."
  echo
fi
T=http://127.0.0.1:$PORT/root/virtualization/v2
IMS="Msvm_ImageManagementService.CreationClassName=\"Msvm_ImageManagementService\",Name=\"vhdsvc\",SystemCreationClassName=\"Msvm_ComputerSystem\",SystemName=\"$(hostname)\""
cat <<MSG
vhdkitd: starting in the foreground (Ctrl-C stops it).  In another terminal:

  # the sample disk's settings (JSON door, Unix socket)
  curl -s --unix-socket $SOCK -X POST $U/Msvm_ImageManagementService/GetVirtualHardDiskSettingData \\
       -d '{"Path":"$SAMPLE"}'

  # what changed since its reference point (the write at 512 MiB)
  curl -s --unix-socket $SOCK -X POST $U/Msvm_ImageManagementService/GetVirtualDiskChanges \\
       -d '{"Path":"$SAMPLE","LimitId":"$ID","TargetSnapshotId":null,"ByteOffset":0,"ByteLength":1073741824}'

  # a new reference point, then the jobs
  curl -s --unix-socket $SOCK -X POST $U/Vhdkit_ChangeTrackingService/CreateReferencePoint -d '{"Path":"$SAMPLE"}'
  curl -s --unix-socket $SOCK $U/Msvm_ConcreteJob

  # the same over TCP, with the bearer token
  curl -s -H 'Authorization: Bearer $TOKEN' -X POST $T/Msvm_ImageManagementService/GetVirtualHardDiskState \\
       -d '{"Path":"$SAMPLE"}'

  # the CIM-XML door with wbemcli (HTTP Basic)
  wbemcli ecn 'http://admin:$PW@127.0.0.1:$PORT/root/virtualization/v2'
  wbemcli cm 'http://admin:$PW@127.0.0.1:$PORT/root/virtualization/v2:$IMS' \\
       'GetVirtualDiskChanges.Path=$SAMPLE,LimitId=$ID,ByteOffset=0,ByteLength=1073741824'

  # the CLI through the daemon, which holds the disk
  $VHDKIT --connect $SOCK info $SAMPLE
  $VHDKIT --connect $SOCK changes $SAMPLE --limit-id $ID --all

Every method: docs/API.md.  The daemon: docs/vhdkitd.8.md.
MSG
exec "$VHDKITD" --foreground --root "$VAR/disks" --state-dir "$VAR/state" --socket "$SOCK" \
  --listen "127.0.0.1:$PORT" --credentials "$CREDS"
