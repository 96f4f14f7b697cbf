#!/usr/bin/env bash
# vhdkitd's TCP door (docs/vhdkitd.8.md, "TCP, credentials and TLS"): HTTP
# Basic and bearer tokens for JSON, Basic only for CIM-XML, 401 with
# WWW-Authenticate and a sentence for missing or wrong credentials, the
# credentials file read again on SIGHUP; refusals at start (no
# credentials, a non-loopback address without TLS, a bad credentials file,
# a key that does not match its certificate), each with a sentence; and
# TLS with a self-signed certificate made by certtool.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/net-lib.sh"
need certtool wbemcli

make_credentials
"$VHDKIT" create "$DISKS/a.vhdx" --size 16M
start_daemon
J=root/virtualization/v2/Msvm_ImageManagementService/GetVirtualHardDiskState
BODY="{\"Path\":\"$DISKS/a.vhdx\"}"

# post URL_PREFIX CURL_ARGS...: the HTTP status; body in $T/resp, headers in $T/hdr.
post () {
  local url=$1
  shift
  curl -sS -o "$T/resp" -D "$T/hdr" -w '%{http_code}' "$@" -X POST "$url" -d "$BODY"
}
expect () {   # expect STATUS WHAT: the last post answered STATUS
  [ "$st" = "$1" ] || fail "$2: HTTP $st, not $1: $(cat "$T/resp")"
}
expect_401 () {   # expect_401 WHAT SENTENCE
  expect 401 "$1"
  grep -qi '^WWW-Authenticate: Basic realm="vhdkitd"' "$T/hdr" || fail "$1: no WWW-Authenticate: $(cat "$T/hdr")"
  grep -q "$2" "$T/resp" || fail "$1: the answer does not say '$2': $(cat "$T/resp")"
}
U="http://127.0.0.1:$PORT/$J"

# JSON with Basic, with the bearer token.
st=$(post "$U" -u "admin:$PW"); expect 200 "Basic"
grep -q '"ReturnValue":0' "$T/resp" || fail "Basic: $(cat "$T/resp")"
st=$(post "$U" -H "Authorization: Bearer $TOKEN"); expect 200 "bearer token"
grep -q '"ReturnValue":0' "$T/resp" || fail "bearer: $(cat "$T/resp")"

# Wrong or missing credentials: 401, with a sentence, as JSON.
st=$(post "$U"); expect_401 "no credentials" 'needs HTTP Basic authentication or a bearer token'
grep -qi '^WWW-Authenticate: Bearer' "$T/hdr" || fail "the JSON door's 401 does not offer Bearer: $(cat "$T/hdr")"
grep -q '"ReturnValue":32769' "$T/resp" || fail "a 401 over JSON carries 32769: $(cat "$T/resp")"
st=$(post "$U" -u "admin:wrong"); expect_401 "a wrong password" 'wrong user name or password'
st=$(post "$U" -u "nobody:$PW"); expect_401 "an unknown user" 'wrong user name or password'
st=$(post "$U" -u "backup:${TOKEN#backup.}"); expect_401 "a token's secret as a Basic password" 'wrong user name or password'
st=$(post "$U" -H "Authorization: Bearer ${TOKEN}x"); expect_401 "a wrong token" 'unknown or wrong bearer token'
st=$(post "$U" -H "Authorization: Bearer admin.$PW"); expect_401 "a password as a token" 'unknown or wrong bearer token'
st=$(post "$U" -H "Authorization: Bearer nodot"); expect_401 "a token without a dot" 'NAME.SECRET'
st=$(post "$U" -H "Authorization: Basic !!!notbase64"); expect_401 "Basic that is not base64" 'not base64'
st=$(post "$U" -H "Authorization: Basic $(printf 'nocolon' | base64)"); expect_401 "Basic without a colon" 'not base64'
st=$(post "$U" -H "Authorization: Digest username=admin"); expect_401 "another scheme" 'not the scheme'
st=$(post "$U" -H "Authorization: Basic $(head -c 6000 /dev/zero | tr '\0' A)"); expect_401 "a very long Basic value" 'not base64'
# GET of jobs is behind the same door.
st=$(curl -sS -o "$T/resp" -w '%{http_code}' "http://127.0.0.1:$PORT/root/virtualization/v2/Msvm_ConcreteJob")
[ "$st" = 401 ] || fail "GET of jobs without credentials: $st"
st=$(curl -sS -o "$T/resp" -w '%{http_code}' -u "admin:$PW" "http://127.0.0.1:$PORT/root/virtualization/v2/Msvm_ConcreteJob")
[ "$st" = 200 ] || fail "GET of jobs with credentials: $st"

# CIM-XML takes Basic only.
getclass_body Msvm_ConcreteJob > "$T/gc.xml"
st=$(cim_post GetClass "$T/gc.xml"); [ "$st" = 200 ] || fail "CIM-XML with Basic: $st $(cat "$T/resp")"
st=$(curl -sS -o "$T/resp" -D "$T/hdr" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" -H 'CIMOperation: MethodCall' \
     -H 'CIMMethod: GetClass' --data-binary @"$T/gc.xml" "http://127.0.0.1:$PORT/cimom")
expect_401 "a bearer token over CIM-XML" 'takes HTTP Basic authentication (a user of the credentials file), not the scheme "Bearer"'
grep -qi '^WWW-Authenticate: Bearer' "$T/hdr" && fail "the CIM-XML door's 401 offers Bearer"
wbemcli gc "http://admin:wrong@127.0.0.1:$PORT/root/virtualization/v2:Msvm_ConcreteJob" > "$T/w" 2>&1 &&
  fail "wbemcli with a wrong password succeeded: $(cat "$T/w")"
grep -qi 'username/password' "$T/w" || fail "wbemcli with a wrong password: $(cat "$T/w")"
wbemcli gc "http://admin:$PW@127.0.0.1:$PORT/root/virtualization/v2:Msvm_ConcreteJob" > "$T/w" 2>&1 ||
  fail "wbemcli with the password: $(cat "$T/w")"

# Keep-alive: several requests on one connection, one of them refused.
curl -sS -o /dev/null -w '%{http_code} ' -u "admin:$PW" -X POST "$U" -d "$BODY" --next \
  -o /dev/null -w '%{http_code} ' -u "admin:wrong" -X POST "$U" -d "$BODY" --next \
  -o /dev/null -w '%{http_code}' -u "admin:$PW" -X POST "$U" -d "$BODY" > "$T/seq"
[ "$(cat "$T/seq")" = "200 401 200" ] || fail "three requests, the middle one with a wrong password: $(cat "$T/seq")"

# SIGHUP: a new user works, a removed one no longer does; a bad file
# keeps the previous entries.
printf 'second\n' | "$VHDKITD" --hash-password op2 > "$T/creds.new"
grep '^token ' "$T/creds" >> "$T/creds.new"
chmod 600 "$T/creds.new"
mv "$T/creds.new" "$T/creds"
kill -HUP "$DPID"
for i in $(seq 50); do grep -q 'credentials read again' "$DLOG" && break; sleep 0.1; done
grep -q 'credentials read again' "$DLOG" || fail "SIGHUP: no reload: $(cat "$DLOG")"
st=$(post "$U" -u "op2:second"); expect 200 "a user added before SIGHUP"
st=$(post "$U" -u "admin:$PW"); expect_401 "a user removed before SIGHUP" 'wrong user name or password'
echo 'user op3 notahash' >> "$T/creds"
kill -HUP "$DPID"
for i in $(seq 50); do grep -q 'previous entries stay' "$DLOG" && break; sleep 0.1; done
grep -q "creds:3: op3: the hash" "$DLOG" || fail "a bad entry is not named: $(cat "$DLOG")"
st=$(post "$U" -u "op2:second"); expect 200 "after a bad reload"
stop_daemon

# ---- refusals at start --------------------------------------------------------
refused () {   # refused SENTENCE ARGS...: vhdkitd refuses to start, saying SENTENCE
  local want=$1
  shift
  if timeout 10 "$VHDKITD" --foreground --root "$DISKS" --state-dir "$T/state" "$@" > "$T/out" 2>&1; then
    fail "vhdkitd $* started"
  fi
  grep -q -- "$want" "$T/out" || fail "vhdkitd $*: expected '$want', got: $(cat "$T/out")"
}
printf '%s\n' "$PW" | "$VHDKITD" --hash-password admin > "$T/creds"
chmod 600 "$T/creds"
refused 'is not a loopback address, so the TCP door needs TLS: give --tls-cert FILE and --tls-key FILE' \
  --listen 0.0.0.0:0 --credentials "$T/creds"
refused 'is not a loopback address, so the TCP door needs TLS' --listen '[::]:0' --credentials "$T/creds"
refused 'needs --credentials FILE: every request over TCP must authenticate' --listen 127.0.0.1:0
refused 'expected ADDRESS:PORT' --listen 127.0.0.1 --credentials "$T/creds"
refused 'is not a number from 0 to 65535' --listen 127.0.0.1:99999 --credentials "$T/creds"
refused '--credentials is for the TCP door' --socket "$SOCK" --credentials "$T/creds"
refused 'credentials .*nothere: No such file' --listen 127.0.0.1:0 --credentials "$T/nothere"
chmod 620 "$T/creds"
refused 'its group or others may write it' --listen 127.0.0.1:0 --credentials "$T/creds"
chmod 600 "$T/creds"
printf 'user a b c d\n' > "$T/bad"; chmod 600 "$T/bad"
refused 'bad:1: expected "user NAME HASH" or "token NAME HASH"' --listen 127.0.0.1:0 --credentials "$T/bad"
printf 'user bad:name $y$j9T$abc$def\n' > "$T/bad"
refused 'bad:1: the name "bad:name" is not 1 to 64' --listen 127.0.0.1:0 --credentials "$T/bad"
printf 'user old aaQ1b2c3d4e5f\n' > "$T/bad"
refused 'bad:1: old: the hash' --listen 127.0.0.1:0 --credentials "$T/bad"
printf '# nothing\n' > "$T/bad"
refused 'no entry' --listen 127.0.0.1:0 --credentials "$T/bad"
printf 'x\n' | "$VHDKITD" --hash-password 'a b' > "$T/out" 2>&1 && fail "--hash-password took the name 'a b'"
printf '' | "$VHDKITD" --hash-password ok > "$T/out" 2>&1 && fail "--hash-password took an empty password"

# ---- TLS --------------------------------------------------------------------------
cat > "$T/cert.cfg" <<'EOF'
cn = "127.0.0.1"
ip_address = "127.0.0.1"
dns_name = "localhost"
expiration_days = 2
tls_www_server
signing_key
encryption_key
EOF
certtool --generate-privkey --key-type=ecdsa --outfile "$T/key.pem" 2>/dev/null || fail "certtool: no key"
certtool --generate-self-signed --load-privkey "$T/key.pem" --template "$T/cert.cfg" --outfile "$T/cert.pem" \
  2>/dev/null || fail "certtool: no certificate"
certtool --generate-privkey --key-type=ecdsa --outfile "$T/other.pem" 2>/dev/null
refused 'do not match' --listen 127.0.0.1:0 --credentials "$T/creds" --tls-cert "$T/cert.pem" --tls-key "$T/other.pem"
refused '--tls-cert needs --tls-key too' --listen 127.0.0.1:0 --credentials "$T/creds" --tls-cert "$T/cert.pem"
refused 'not a PEM file' --listen 127.0.0.1:0 --credentials "$T/creds" --tls-cert "$T/creds" --tls-key "$T/key.pem"

# A non-loopback address is fine with TLS; clients reach it on 127.0.0.1.
start_daemon_tls () {
  : > "$DLOG"
  "$VHDKITD" --foreground --root "$DISKS" --state-dir "$T/state" --listen "$1" --credentials "$T/creds" \
    --tls-cert "$T/cert.pem" --tls-key "$T/key.pem" 2>"$DLOG" &
  DPID=$!
  for i in $(seq 100); do grep -q 'ready:' "$DLOG" && break; kill -0 "$DPID" || fail "no start: $(cat "$DLOG")"; sleep 0.1; done
  grep -q 'on https://' "$DLOG" || fail "the ready line does not say https: $(cat "$DLOG")"
  PORT=$(sed -n 's|.*https://[^ ]*:\([0-9][0-9]*\),.*|\1|p' "$DLOG")
}
start_daemon_tls 0.0.0.0:0
S="https://127.0.0.1:$PORT"
st=$(post "$S/$J" --cacert "$T/cert.pem" -u "admin:$PW"); expect 200 "JSON over TLS"
grep -q '"ReturnValue":0' "$T/resp" || fail "JSON over TLS: $(cat "$T/resp")"
st=$(post "$S/$J" --cacert "$T/cert.pem" -u "admin:wrong"); expect_401 "a wrong password over TLS" 'wrong user name'
st=$(curl -sS -o "$T/resp" -w '%{http_code}' --cacert "$T/cert.pem" -u "admin:$PW" -H 'CIMOperation: MethodCall' \
     -H 'CIMMethod: GetClass' --data-binary @"$T/gc.xml" "$S/cimom")
[ "$st" = 200 ] && grep -q '<CLASS NAME="Msvm_ConcreteJob">' "$T/resp" || fail "CIM-XML over TLS: $st $(head -c 300 "$T/resp")"
wbemcli -cacert "$T/cert.pem" gc "https://admin:$PW@127.0.0.1:$PORT/root/virtualization/v2:Msvm_ConcreteJob" > "$T/w" 2>&1 ||
  fail "wbemcli over TLS: $(cat "$T/w")"
grep -q 'Msvm_ConcreteJob InstanceID=' "$T/w" || fail "wbemcli over TLS: $(cat "$T/w")"
# Without the CA the certificate is refused; plain HTTP gets no answer.
curl -sS -o /dev/null -u "admin:$PW" -X POST "$S/$J" -d "$BODY" 2>/dev/null && fail "curl trusted a self-signed certificate"
curl -sS -o /dev/null -u "admin:$PW" -X POST "http://127.0.0.1:$PORT/$J" -d "$BODY" 2>/dev/null &&
  fail "plain HTTP was answered on the TLS port"
kill -0 "$DPID" || fail "vhdkitd died after a plain HTTP request on its TLS port"
st=$(post "$S/$J" --cacert "$T/cert.pem" -u "admin:$PW"); expect 200 "JSON over TLS after the bad clients"
stop_daemon
echo "tcp: Basic, bearer, 401s, SIGHUP, refusals and TLS as documented"
