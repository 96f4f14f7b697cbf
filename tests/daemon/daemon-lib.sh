# Helpers for the vhdkitd tests.  Source after ../lib.sh.
#   start_daemon [OPTIONS...]  start vhdkitd in the foreground on $T/disks
#                              (root), $T/state, socket $SOCK; waits until
#                              it answers.  Its stderr goes to $T/vhdkitd.log.
#   stop_daemon                SIGTERM, wait, and require exit status 0
#   call CLASS METHOD JSON     POST a call over the JSON door; prints the reply
#   jf FIELD [JSON]            a field of the JSON on stdin (or JSON): strings
#                              bare, others as compact JSON ("a.b" and "a[0]"
#                              paths); fails on a missing key
#   wait_job JOBPATH           poll the job until it leaves JobState 4; prints it
: "${VHDKITD:=$VHDKIT_BUILD/vhdkitd}"
need curl
need jq
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
  # jq, not python: it starts in milliseconds, and the polling loops call
  # this thousands of times.  A missing key or index is an error, as a
  # lookup in a dict would be.  (jq 1.6 holds numbers as doubles: exact
  # up to 2^53, which every size and offset of these tests is below.)
  local input
  if [ $# -ge 2 ]; then input=$2; else input=$(cat); fi
  printf '%s' "$input" | jq -r --arg p "$1" '
    reduce ($p | [scan("[^.\\[\\]]+|\\[[0-9]+\\]")][]) as $k (.;
      if ($k | startswith("[")) then
        ($k[1:-1] | tonumber) as $i
        | if type == "array" and $i < length then .[$i] else error("no element \($k)") end
      elif type == "object" and has($k) then .[$k]
      else error("no key \($k)") end)
    | if type == "string" then . else tojson end'
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
