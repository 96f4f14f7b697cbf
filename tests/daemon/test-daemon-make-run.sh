#!/usr/bin/env bash
# make run (scripts/run-daemon.sh): vhdkitd starts on its embedded
# defaults under a fresh var directory, and every command it prints
# works when pasted: the curl calls over the Unix socket and over TCP
# with the bearer token answer ReturnValue 0, wbemcli lists the classes
# and calls GetVirtualDiskChanges, and `vhdkit --connect` reads the
# sample disk's changes through the daemon (the write at 512 MiB).
# Ctrl-C (SIGINT) stops it with exit 0; a second start keeps the
# credentials and does not print their secrets again.
. "$(dirname "$0")/../lib.sh"
need curl wbemcli "$PY"

VHDKITD=$VHDKIT_BUILD/vhdkitd
[ -x "$VHDKITD" ] || fail "$VHDKITD is missing (make all builds it)"
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export VHDKIT VHDKITD VHDKIT_VAR=$T/var VHDKIT_PORT=$PORT

start () {   # start LOG: run-daemon.sh in the background until ready
  setsid "$TOP/scripts/run-daemon.sh" > "$1" 2>&1 &
  RPID=$!
  for i in $(seq 200); do
    grep -q 'ready:' "$1" && return 0
    kill -0 "$RPID" 2>/dev/null || fail "make run exited: $(cat "$1")"
    sleep 0.1
  done
  fail "make run is not ready after 20 s: $(cat "$1")"
}
stop () {
  kill -INT "$RPID"
  local rc=0
  wait "$RPID" || rc=$?
  [ "$rc" = 0 ] || fail "Ctrl-C: vhdkitd exited $rc: $(tail -5 "$T/run.log")"
}
trap 'kill -KILL "$RPID" 2>/dev/null || true; rm -rf "$T"' EXIT

start "$T/run.log"
grep -q '^  user admin      password ' "$T/run.log" && grep -q '^  token backup    ' "$T/run.log" ||
  fail "the first run does not print the new credentials: $(head -8 "$T/run.log")"

# The pasted commands: two-space indented lines, joined at a trailing "\".
"$PY" - "$T/run.log" "$T/cmds" <<'PY'
import sys
out, cur = [], ''
for line in open(sys.argv[1]):
    line = line.rstrip('\n')
    if cur:
        cur += ' ' + line.strip()
    elif line.startswith('  ') and not line.startswith('  #') and line.strip().split()[0] not in ('user', 'token'):
        cur = line.strip()
    else:
        continue
    if cur.endswith('\\'):
        cur = cur[:-1].rstrip()
    else:
        out.append(cur); cur = ''
open(sys.argv[2], 'w').write('\n'.join(out) + '\n')
PY
n=0
while IFS= read -r cmd; do
  n=$((n + 1))
  bash -c "$cmd" > "$T/out" 2>&1 < /dev/null || fail "printed command failed: $cmd: $(cat "$T/out")"
  case $cmd in
    *'/Msvm_ConcreteJob') grep -q '"Msvm_ConcreteJob"' "$T/out" || fail "$cmd: $(cat "$T/out")" ;;
    curl*) grep -q '"ReturnValue":0,' "$T/out" || fail "$cmd did not answer ReturnValue 0: $(cat "$T/out")" ;;
    *'wbemcli ecn'*) grep -q ':Msvm_ImageManagementService$' "$T/out" || fail "$cmd: $(cat "$T/out")" ;;
    *'wbemcli cm'*) grep -q 'GetVirtualDiskChanges: 0, .*ChangedByteOffsets (uint64): 536870912' "$T/out" ||
                      fail "$cmd: $(cat "$T/out")" ;;
    *' changes '*) grep -q '^536870912 ' "$T/out" || fail "$cmd does not report the write at 512 MiB: $(cat "$T/out")" ;;
    *' info '*) grep -qi 'vhdx' "$T/out" || fail "$cmd: $(cat "$T/out")" ;;
    *) fail "an unexpected printed command: $cmd" ;;
  esac
done < "$T/cmds"
[ "$n" -ge 9 ] || fail "only $n commands printed: $(cat "$T/cmds")"
for k in 'wbemcli cm' 'Bearer' '--connect'; do
  grep -qF -- "$k" "$T/cmds" || fail "make run prints no command with $k"
done
stop

start "$T/run2.log"
grep -q 'password ' "$T/run2.log" && fail "the second run printed a password again"
grep -q 'credentials from' "$T/run2.log" || fail "the second run does not say where the credentials are: $(head -5 "$T/run2.log")"
stop
echo "make run: $n printed commands work; Ctrl-C stops it cleanly"
