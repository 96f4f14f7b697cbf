# Helpers for the vhdkitd tests.  Source after ../lib.sh.
#   start_daemon [OPTIONS...]  start vhdkitd in the foreground on $T/disks
#                              (root), $T/state, socket $SOCK; waits until
#                              it answers.  Its stderr goes to $T/vhdkitd.log.
#   stop_daemon                SIGTERM, wait, and require exit status 0
#   call CLASS METHOD JSON     POST a call over the JSON door; prints the reply
#   jf FIELD [JSON]            a field of the JSON on stdin (or JSON): strings
#                              bare, others as JSON ("a.b" and "a[0]" paths)
#   wait_job JOBPATH           poll the job until it leaves JobState 4; prints it
: "${VHDKITD:=$VHDKIT_BUILD/vhdkitd}"
need curl
[ -x "$VHDKITD" ] || fail "$VHDKITD is missing (make builds it)"
SOCK=$T/vhdkitd.sock
NS=root/virtualization/v2
mkdir -p "$T/disks" "$T/state"
DPID=

start_daemon () {
  rm -f "$SOCK"
  "$VHDKITD" --foreground --root "$T/disks" --state-dir "$T/state" --socket "$SOCK" "$@" \
    2>>"$T/vhdkitd.log" &
  DPID=$!
  local i
  for i in $(seq 1 100); do
    [ -S "$SOCK" ] && curl -s --unix-socket "$SOCK" "http://localhost/$NS/Msvm_ConcreteJob" >/dev/null 2>&1 && return 0
    kill -0 "$DPID" 2>/dev/null || { cat "$T/vhdkitd.log" >&2; fail "vhdkitd exited at start"; }
    sleep 0.1
  done
  fail "vhdkitd did not answer within 10 s"
}

stop_daemon () {
  [ -n "$DPID" ] || return 0
  kill -TERM "$DPID"
  local rc=0
  wait "$DPID" || rc=$?
  DPID=
  [ "$rc" = 0 ] || { cat "$T/vhdkitd.log" >&2; fail "vhdkitd exited $rc after SIGTERM"; }
  [ ! -e "$SOCK" ] || fail "vhdkitd left its socket $SOCK behind"
}

trap 'if [ -n "$DPID" ]; then kill -KILL "$DPID" 2>/dev/null || true; fi; rm -rf "$T"' EXIT

call () {
  curl -sS --unix-socket "$SOCK" -X POST -H 'Content-Type: application/json' \
    --data-binary "$3" "http://localhost/$NS/$1/$2"
}

jf () {
  local input
  if [ $# -ge 2 ]; then input=$2; else input=$(cat); fi
  printf '%s' "$input" | "$PY" -c '
import json, re, sys
v = json.load(sys.stdin)
for part in re.findall(r"[^.\[\]]+|\[\d+\]", sys.argv[1]):
    if part.startswith("["):
        v = v[int(part[1:-1])]
    else:
        v = v[part]
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

wait_job () {
  local id=${1#*InstanceID=\"}
  id=${id%\"}
  local i j
  for i in $(seq 1 600); do
    j=$(curl -sS --unix-socket "$SOCK" "http://localhost/$NS/Msvm_ConcreteJob/$id")
    [ "$(jf JobState "$j")" != 4 ] && { printf '%s\n' "$j"; return 0; }
    sleep 0.1
  done
  fail "job $id still running after 60 s"
}

# expect_rc CODE REPLY: the reply's ReturnValue is CODE and, unless 0 or
# 4096, ErrorDescription says something.
expect_rc () {
  local got
  got=$(jf ReturnValue "$2")
  [ "$got" = "$1" ] || fail "expected ReturnValue $1, got: $2"
  if [ "$1" != 0 ] && [ "$1" != 4096 ]; then
    [ -n "$(jf ErrorDescription "$2")" ] || fail "ReturnValue $1 without an ErrorDescription: $2"
  fi
}
