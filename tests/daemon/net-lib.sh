# Helpers for the tests of vhdkitd's TCP door and CIM-XML (docs/vhdkitd.8.md,
# "TCP, credentials and TLS" and "CIM-XML").  Source after tests/lib.sh.
#
#   make_credentials     $T/creds with user "admin" (password $PW) and a
#                        bearer token ($TOKEN) named "backup"
#   start_daemon ARGS... start build/vhdkitd in the foreground on a free
#                        127.0.0.1 port (--listen 127.0.0.1:0) with the Unix
#                        socket $SOCK, root $DISKS, state $T/state; sets
#                        $DPID, $PORT, $BASE (http://admin:PW@127.0.0.1:PORT)
#                        and $NS ($BASE/root/virtualization/v2); its stderr
#                        goes to $DLOG.  Stopped (by PID) when the test ends.
#   stop_daemon          SIGTERM, wait, and fail if it did not exit 0
#   json_call CLASS METHOD JSON    a call over the Unix socket: the answer
#   cim_post METHOD FILE [ARGS]    POST FILE to /cimom with the CIM-XML headers
#                        (CIMOperation $CIMOP, default MethodCall, and
#                        CIMProtocolVersion $CIMPV, default 1.0; METHOD ""
#                        sends no CIMMethod); the body goes to $T/resp, the
#                        headers to $T/hdr, and the HTTP status is printed
#   assert_alive WHAT    the daemon still runs and answers a GetClass
need curl
VHDKITD=$VHDKIT_BUILD/vhdkitd
[ -x "$VHDKITD" ] || fail "$VHDKITD is missing (make build/vhdkitd)"

DISKS=$T/disks
SOCK=$T/s.sock
DLOG=$T/vhdkitd.log
PW='pa55-Word'
DPID=
mkdir -p "$DISKS" "$T/state"
trap 'if [ -n "$DPID" ]; then kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; fi; rm -rf "$T"' EXIT

make_credentials () {
  printf '%s\n' "$PW" | "$VHDKITD" --hash-password admin > "$T/creds" || fail "--hash-password failed"
  "$VHDKITD" --new-token backup > "$T/token.out" || fail "--new-token failed"
  TOKEN=$(sed -n 1p "$T/token.out")
  sed -n 2p "$T/token.out" >> "$T/creds"
  chmod 600 "$T/creds"
  grep -q '^user admin \$y\$' "$T/creds" || fail "--hash-password did not write a yescrypt entry: $(cat "$T/creds")"
  grep -q '^token backup \$y\$' "$T/creds" || fail "--new-token did not write a yescrypt entry: $(cat "$T/token.out")"
  case $TOKEN in backup.?*) ;; *) fail "--new-token printed '$TOKEN', not backup.SECRET" ;; esac
}

start_daemon () {
  : > "$DLOG"
  "$VHDKITD" --foreground --root "$DISKS" --state-dir "$T/state" --socket "$SOCK" \
    --listen 127.0.0.1:0 --credentials "$T/creds" "$@" 2>"$DLOG" &
  DPID=$!
  local i
  for i in $(seq 100); do
    grep -q 'ready:' "$DLOG" && break
    kill -0 "$DPID" 2>/dev/null || fail "vhdkitd did not start: $(cat "$DLOG")"
    sleep 0.1
  done
  PORT=$(sed -n 's|.*://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$DLOG" | head -n 1)
  [ -n "$PORT" ] || fail "vhdkitd did not say its port: $(cat "$DLOG")"
  BASE="http://admin:$PW@127.0.0.1:$PORT"
  NS="$BASE/root/virtualization/v2"
}

stop_daemon () {
  [ -n "$DPID" ] || return 0
  kill "$DPID"
  local rc=0
  wait "$DPID" || rc=$?
  DPID=
  [ "$rc" -eq 0 ] || fail "vhdkitd exited $rc on SIGTERM: $(tail -n 5 "$DLOG")"
}

json_call () {
  curl -sS --unix-socket "$SOCK" -X POST "http://localhost/root/virtualization/v2/$1/$2" -d "$3" ||
    fail "JSON call $1.$2 failed"
}

cim_post () {   # cim_post METHOD FILE [curl args...]
  local m=$1 f=$2
  shift 2
  curl -sS -o "$T/resp" -D "$T/hdr" -w '%{http_code}' -u "admin:$PW" \
    -H 'Content-Type: application/xml; charset="utf-8"' -H "CIMProtocolVersion: ${CIMPV-1.0}" \
    -H "CIMOperation: ${CIMOP-MethodCall}" -H "CIMMethod:${m:+ $m}" "$@" --data-binary @"$f" \
    "http://127.0.0.1:$PORT/cimom"
}

# A GetClass request for CLASS.
getclass_body () {
  cat <<EOF
<?xml version="1.0" encoding="utf-8" ?>
<CIM CIMVERSION="2.0" DTDVERSION="2.0"><MESSAGE ID="77" PROTOCOLVERSION="1.0"><SIMPLEREQ><IMETHODCALL NAME="GetClass"><LOCALNAMESPACEPATH><NAMESPACE NAME="root"/><NAMESPACE NAME="virtualization"/><NAMESPACE NAME="v2"/></LOCALNAMESPACEPATH><IPARAMVALUE NAME="ClassName"><CLASSNAME NAME="$1"/></IPARAMVALUE><IPARAMVALUE NAME="IncludeQualifiers"><VALUE>TRUE</VALUE></IPARAMVALUE></IMETHODCALL></SIMPLEREQ></MESSAGE></CIM>
EOF
}

# (Over the Unix socket, which needs no password check: quicker.)
assert_alive () {
  kill -0 "$DPID" 2>/dev/null || fail "vhdkitd died ($*): $(tail -n 5 "$DLOG")"
  getclass_body Msvm_ImageManagementService > "$T/alive.xml"
  local st
  st=$(curl -sS -o "$T/resp" -w '%{http_code}' --unix-socket "$SOCK" -H 'CIMOperation: MethodCall' \
       -H 'CIMMethod: GetClass' --data-binary @"$T/alive.xml" http://localhost/cimom) ||
    fail "vhdkitd does not answer after $*"
  [ "$st" = 200 ] && grep -q '<CLASS NAME="Msvm_ImageManagementService">' "$T/resp" ||
    fail "GetClass after $* answered $st: $(head -c 300 "$T/resp")"
}
