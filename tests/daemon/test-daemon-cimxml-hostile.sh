#!/usr/bin/env bash
# Malformed and hostile CIM-XML sent to vhdkitd's /cimom (docs/vhdkitd.8.md,
# "CIM-XML"): unescaped & and <, DOCTYPEs with internal entities (billion
# laughs), external entities and DTDs (file:// and http://), deep
# nesting, huge bodies, wrong CIMOperation/CIMMethod/version headers,
# unknown classes, methods and parameters, wrong PARAMTYPEs and values,
# missing and wrong keys, hostile embedded instances.  Each gets the CIM
# error (or ReturnValue, or HTTP status) its kind calls for, with a
# description; the daemon keeps serving (a GetClass works after each) and
# no answer ever carries the content of a file it was pointed at.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/net-lib.sh"
need "$PY"

make_credentials
"$VHDKIT" create "$DISKS/a.vhdx" --size 16M
start_daemon
HOST=$(hostname)
MARK="SECRET-$RANDOM$RANDOM-MARK"
echo "$MARK" > "$T/secret.txt"
: > "$T/cases"   # one line per request (cases run in pipelines: subshells)

NSP='<LOCALNAMESPACEPATH><NAMESPACE NAME="root"/><NAMESPACE NAME="virtualization"/><NAMESPACE NAME="v2"/></LOCALNAMESPACEPATH>'
HEAD='<?xml version="1.0" encoding="utf-8" ?>'
env_open () { echo "$HEAD<CIM CIMVERSION=\"2.0\" DTDVERSION=\"2.0\"><MESSAGE ID=\"9\" PROTOCOLVERSION=\"1.0\"><SIMPLEREQ>"; }
env_close () { echo '</SIMPLEREQ></MESSAGE></CIM>'; }
# icall OP IPARAMS: an intrinsic call in root/virtualization/v2.
icall () { echo "$(env_open)<IMETHODCALL NAME=\"$1\">$NSP$2</IMETHODCALL>$(env_close)"; }
cname () { echo "<IPARAMVALUE NAME=\"ClassName\"><CLASSNAME NAME=\"$1\"/></IPARAMVALUE>"; }
kb () { echo "<KEYBINDING NAME=\"$1\"><KEYVALUE VALUETYPE=\"string\">$2</KEYVALUE></KEYBINDING>"; }
svc_keys () {   # svc_keys CLASS NAME SYSTEMNAME
  echo "$(kb CreationClassName "$1")$(kb Name "$2")$(kb SystemCreationClassName Msvm_ComputerSystem)$(kb SystemName "$3")"
}
inst () { echo "<LOCALINSTANCEPATH>$NSP<INSTANCENAME CLASSNAME=\"$1\">$2</INSTANCENAME></LOCALINSTANCEPATH>"; }
IMSI=$(inst Msvm_ImageManagementService "$(svc_keys Msvm_ImageManagementService vhdsvc "$HOST")")
# mcall METHOD PATH PARAMS: an extrinsic call.
mcall () { echo "$(env_open)<METHODCALL NAME=\"$1\">$2$3</METHODCALL>$(env_close)"; }
pv () { echo "<PARAMVALUE NAME=\"$1\"${3:-}><VALUE>$2</VALUE></PARAMVALUE>"; }
changes_params () {   # a valid set of GetVirtualDiskChanges parameters but for $1 (ByteOffset's)
  echo "$(pv Path "$DISKS/a.vhdx")$(pv LimitId rctX:x)<PARAMVALUE NAME=\"ByteOffset\"${2:-}><VALUE>$1</VALUE></PARAMVALUE>$(pv ByteLength 512)"
}
sd_inst () { echo "<INSTANCE CLASSNAME=\"Msvm_VirtualHardDiskSettingData\">$1</INSTANCE>"; }
prop () { echo "<PROPERTY NAME=\"$1\" TYPE=\"$2\"><VALUE>$3</VALUE></PROPERTY>"; }

# hostile NAME CIMMETHOD EXPECT [curl args...] < BODY
# The answer stays in $T/case.
#   EXPECT  "err N"         HTTP 200, a CIM ERROR with CODE N and a DESCRIPTION
#           "rv N"          HTTP 200, ReturnValue N and an ErrorDescription
#           "http S [E]"    HTTP status S (and CIMError: E) with a sentence
#           "ok"            HTTP 200 without ERROR
hostile () {
  local name=$1 method=$2 expect=$3 st
  shift 3
  cat > "$T/body"
  echo "$name" >> "$T/cases"
  st=$(cim_post "$method" "$T/body" "$@") || fail "$name: curl failed (the daemon dropped the connection?)"
  set -- $expect
  case $1 in
    err)
      [ "$st" = 200 ] || fail "$name: HTTP $st, not 200: $(head -c 400 "$T/resp")"
      grep -q "<ERROR CODE=\"$2\" DESCRIPTION=\"CIM_ERR_[A-Z_]*: [^\"]" "$T/resp" ||
        fail "$name: wanted CIM error $2 with a description: $(head -c 600 "$T/resp")" ;;
    rv)
      [ "$st" = 200 ] || fail "$name: HTTP $st, not 200: $(head -c 400 "$T/resp")"
      grep -q "<RETURNVALUE PARAMTYPE=\"uint32\"><VALUE>$2</VALUE></RETURNVALUE>" "$T/resp" ||
        fail "$name: wanted ReturnValue $2: $(head -c 600 "$T/resp")"
      [ "$2" = 0 ] || [ "$2" = 4096 ] || grep -q '<PARAMVALUE NAME="ErrorDescription" PARAMTYPE="string"><VALUE>[^<]' "$T/resp" ||
        fail "$name: no ErrorDescription: $(head -c 600 "$T/resp")" ;;
    http)
      [ "$st" = "$2" ] || fail "$name: HTTP $st, not $2: $(head -c 400 "$T/resp")"
      [ -z "${3:-}" ] || grep -qi "^CIMError: $3" "$T/hdr" || fail "$name: no 'CIMError: $3': $(cat "$T/hdr")"
      grep -q '^vhdkitd: ..' "$T/resp" || fail "$name: no sentence: $(head -c 400 "$T/resp")" ;;
    ok)
      [ "$st" = 200 ] && ! grep -q '<ERROR ' "$T/resp" || fail "$name: $st $(head -c 600 "$T/resp")" ;;
  esac
  if grep -q -e "$MARK" -e 'root:x:0:0' "$T/resp" "$T/hdr"; then
    fail "$name: the answer carries the content of a file: $(head -c 600 "$T/resp")"
  fi
  cp "$T/resp" "$T/case"
  assert_alive "$name"
}

# ---- not well-formed --------------------------------------------------------------
mcall GetVirtualHardDiskState "$IMSI" "<PARAMVALUE NAME=\"Path\"><VALUE>/srv/a&b.vhdx</VALUE></PARAMVALUE>" |
  hostile "unescaped &" GetVirtualHardDiskState "err 4"
grep -q 'wbemcli does not escape them' "$T/case" || fail "the & error does not say how to write it: $(cat "$T/case")"
mcall GetVirtualHardDiskState "$IMSI" "<PARAMVALUE NAME=\"Path\"><VALUE>/srv/a<b.vhdx</VALUE></PARAMVALUE>" |
  hostile "unescaped <" GetVirtualHardDiskState "err 4"
mcall GetVirtualHardDiskState "$IMSI" "<PARAMVALUE NAME=\"Path\"><VALUE>/srv/a&b<c>.vhdx</VALUE></PARAMVALUE>" |
  hostile "wbemcli's unescaped path" GetVirtualHardDiskState "err 4"
icall GetClass "$(cname Msvm_Error)" | sed 's|</CIM>||' | hostile "an unclosed element" GetClass "err 4"
icall GetClass "$(cname Msvm_Error)" | sed 's|</SIMPLEREQ>|</SIMPLERSP>|' | hostile "mismatched tags" GetClass "err 4"
printf '' | hostile "an empty body" GetClass "err 4"
echo 'GetClass Msvm_Error please' | hostile "plain text" GetClass "err 4"
echo '{"ClassName":"Msvm_Error"}' | hostile "a JSON body" GetClass "err 4"
icall GetClass "$(cname 'Msvm&undefined;Error')" | hostile "an undefined entity" GetClass "err 4"
icall GetClass "$(cname 'Msvm&#0;Error')" | hostile "a character reference to NUL" GetClass "err 4"
icall GetClass "$(cname 'Msvm&#1;Error')" | hostile "a control character reference" GetClass "err 4"
{ printf '%s<CIM CIMVERSION="2.0" DTDVERSION="2.0"><MESSAGE ID="\xff\xfe" PROTOCOLVERSION="1.0"/></CIM>' "$HEAD"; } |
  hostile "bytes that are not UTF-8" GetClass "err 4"
{ icall GetClass "$(cname Msvm_Error)"; echo '<CIM/>'; } | hostile "two root elements" GetClass "err 4"
{ icall GetClass "$(cname Msvm_Error)"; echo 'trailing'; } | hostile "text after the root" GetClass "err 4"
icall GetClass "<IPARAMVALUE NAME=\"ClassName\"><CLASSNAME NAME=\"Msvm_Error\" NAME=\"x\"/></IPARAMVALUE>" |
  hostile "an attribute given twice" GetClass "err 4"
printf '<CIM CIMVERSION="2.0" DTDVERSION="2.0"><MESSAGE ID="1" PROTOCOLVERSION="1.0"' | hostile "a truncated body" GetClass "err 4"

# ---- DOCTYPE, entities, external resources ----------------------------------------
laughs='<!DOCTYPE CIM [<!ENTITY a "lollollollollollollollollollol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;"><!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;"><!ENTITY i "&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;">]>'
icall GetClass "$(cname '&i;')" | sed "1s|^$HEAD|$HEAD$laughs|" | hostile "billion laughs" GetClass "err 4"
grep -q 'DOCTYPE is not accepted' "$T/case" || fail "billion laughs: $(cat "$T/case")"
icall GetClass "$(cname '&x;')" | sed "1s|^$HEAD|$HEAD<!DOCTYPE CIM [<!ENTITY x SYSTEM \"file://$T/secret.txt\">]>|" |
  hostile "an external entity (file)" GetClass "err 4"
icall GetClass "$(cname '&x;')" | sed "1s|^$HEAD|$HEAD<!DOCTYPE CIM [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>|" |
  hostile "an external entity (/etc/passwd)" GetClass "err 4"
mcall GetVirtualHardDiskState "$IMSI" "$(pv Path '&x;')" |
  sed "1s|^$HEAD|$HEAD<!DOCTYPE CIM [<!ENTITY x SYSTEM \"file://$T/secret.txt\">]>|" |
  hostile "an external entity in a parameter" GetVirtualHardDiskState "err 4"
icall GetClass "$(cname Msvm_Error)" | sed "1s|^$HEAD|$HEAD<!DOCTYPE CIM SYSTEM \"file://$T/secret.txt\">|" |
  hostile "an external DTD (file)" GetClass "err 4"
icall GetClass "$(cname Msvm_Error)" | sed "1s|^$HEAD|$HEAD<!DOCTYPE CIM SYSTEM \"http://127.0.0.1:$PORT/cimom\">|" |
  hostile "an external DTD (http)" GetClass "err 4"
icall GetClass "$(cname '&x;')" |
  sed "1s|^$HEAD|$HEAD<!DOCTYPE CIM [<!ENTITY % p SYSTEM \"file://$T/secret.txt\"> %p; <!ENTITY x \"y\">]>|" |
  hostile "a parameter entity" GetClass "err 4"
icall GetClass "$(cname Msvm_Error)" | sed "1s|^$HEAD|$HEAD<!DOCTYPE CIM>|" | hostile "an empty DOCTYPE" GetClass "err 4"
mcall GetVirtualHardDiskState "$IMSI" "<PARAMVALUE NAME=\"Path\"><VALUE><xi:include xmlns:xi=\"http://www.w3.org/2001/XInclude\" href=\"file://$T/secret.txt\" parse=\"text\"/></VALUE></PARAMVALUE>" |
  hostile "XInclude" GetVirtualHardDiskState "rv 32776"
icall GetClass "$(cname Msvm_Error)" | sed "1s|^$HEAD|$HEAD<?xml-stylesheet href=\"file://$T/secret.txt\"?><!-- a comment -->|" |
  hostile "a processing instruction and a comment" GetClass "ok"

# ---- sizes and depth ------------------------------------------------------------
"$PY" -c 'print("<?xml version=\"1.0\"?>" + "<a>" * 20000 + "</a>" * 20000)' | hostile "20000 nested elements" GetClass "err 4"
grep -q 'nest deeper than' "$T/case" || fail "deep nesting: $(cat "$T/case")"
mcall GetVirtualHardDiskState "$IMSI" "<PARAMVALUE NAME=\"Path\"><VALUE>$("$PY" -c 'print("<INSTANCE CLASSNAME=\"x\">" * 40 + "</INSTANCE>" * 40)')</VALUE></PARAMVALUE>" |
  hostile "nesting inside a VALUE" GetVirtualHardDiskState "err 4"
head -c $((2 << 20)) /dev/zero | tr '\0' x | hostile "a 2 MiB body" GetClass "http 413"
head -c $((2 << 20)) /dev/zero | tr '\0' x | hostile "a 2 MiB chunked body" GetClass "http 413" -H 'Transfer-Encoding: chunked'
mcall GetVirtualHardDiskState "$IMSI" "$(pv Path "/$(head -c 900000 /dev/zero | tr '\0' a)")" |
  hostile "a 900 KB path" GetVirtualHardDiskState "rv 32773"
icall GetClass "<IPARAMVALUE NAME=\"ClassName\"><CLASSNAME NAME=\"Msvm_Error\" $("$PY" -c 'print(" ".join("a%d=\"1\"" % i for i in range(20000)))')/></IPARAMVALUE>" |
  hostile "20000 attributes" GetClass "ok"
{ env_open; echo "<IMETHODCALL NAME=\"GetClass\">$NSP$(cname Msvm_Error)"; for i in $(seq 20); do echo '<IPARAMVALUE NAME="LocalOnly"><VALUE>TRUE</VALUE></IPARAMVALUE>'; done; echo "</IMETHODCALL>$(env_close)"; } |
  hostile "one parameter 20 times" GetClass "err 4"

# ---- HTTP headers (DSP0200) ---------------------------------------------------------
getclass_body Msvm_Error > "$T/gc.xml"
st=$(curl -sS -o "$T/resp" -D "$T/hdr" -w '%{http_code}' -u "admin:$PW" --data-binary @"$T/gc.xml" "http://127.0.0.1:$PORT/cimom")
[ "$st" = 400 ] && grep -qi '^CIMError: unsupported-operation' "$T/hdr" || fail "no CIMOperation header: $st $(cat "$T/hdr")"
echo "no CIMOperation" >> "$T/cases"
CIMOP=MethodResponse hostile "CIMOperation MethodResponse" GetClass "http 400 unsupported-operation" < "$T/gc.xml"
CIMOP=Gimme hostile "CIMOperation nonsense" GetClass "http 400 unsupported-operation" < "$T/gc.xml"
hostile "a CIMBatch header" GetClass "http 501 multiple-requests-unsupported" -H 'CIMBatch: CIMBatch' < "$T/gc.xml"
CIMPV=2.0 hostile "CIMProtocolVersion 2.0" GetClass "http 501 unsupported-protocol-version" < "$T/gc.xml"
hostile "no CIMMethod header" "" "http 400 header-mismatch" < "$T/gc.xml"
hostile "CIMMethod differs from the body" GetInstance "http 400 header-mismatch" < "$T/gc.xml"
st=$(curl -sS -o "$T/resp" -w '%{http_code}' -u "admin:$PW" "http://127.0.0.1:$PORT/cimom")
[ "$st" = 405 ] || fail "GET /cimom: $st"
st=$(curl -sS -o "$T/resp" -w '%{http_code}' -u "admin:$PW" -X PUT --data-binary @"$T/gc.xml" "http://127.0.0.1:$PORT/cimom")
[ "$st" = 405 ] || fail "PUT /cimom: $st"
st=$(curl -sS -o "$T/resp" -w '%{http_code}' -H 'CIMOperation: MethodCall' -H 'CIMMethod: GetClass' --data-binary @"$T/gc.xml" "http://127.0.0.1:$PORT/cimom")
[ "$st" = 401 ] || fail "no credentials: $st"
printf '%s\n' "GET /cimom" "PUT /cimom" "no credentials" >> "$T/cases"

# ---- the envelope -------------------------------------------------------------------
echo "$HEAD<NOTCIM/>" | hostile "a root that is not CIM" GetClass "err 4"
sed 's/CIMVERSION="2.0"/CIMVERSION="3.0"/' "$T/gc.xml" | hostile "CIMVERSION 3.0" GetClass "http 501 unsupported-cim-version"
sed 's/DTDVERSION="2.0"/DTDVERSION="9.9"/' "$T/gc.xml" | hostile "DTDVERSION 9.9" GetClass "http 501 unsupported-dtd-version"
sed 's/ CIMVERSION="2.0"//' "$T/gc.xml" | hostile "no CIMVERSION" GetClass "http 501 unsupported-cim-version"
echo "$HEAD<CIM CIMVERSION=\"2.0\" DTDVERSION=\"2.0\"></CIM>" | hostile "no MESSAGE" GetClass "err 4"
sed 's/ ID="77"//' "$T/gc.xml" | hostile "a MESSAGE without ID" GetClass "err 4"
sed 's/PROTOCOLVERSION="1.0"/PROTOCOLVERSION="2.0"/' "$T/gc.xml" | hostile "PROTOCOLVERSION 2.0" GetClass "http 501 unsupported-protocol-version"
sed 's/SIMPLEREQ>/MULTIREQ>/g' "$T/gc.xml" | hostile "MULTIREQ" GetClass "http 501 multiple-requests-unsupported"
echo "$(env_open)$(env_close)" | hostile "an empty SIMPLEREQ" GetClass "err 4"
echo "$(env_open)<IMETHODCALL NAME=\"GetClass\">$NSP$(cname Msvm_Error)</IMETHODCALL><IMETHODCALL NAME=\"GetClass\">$NSP$(cname Msvm_Error)</IMETHODCALL>$(env_close)" |
  hostile "two calls in one SIMPLEREQ" GetClass "err 4"
echo "$(env_open)<IMETHODCALL>$NSP$(cname Msvm_Error)</IMETHODCALL>$(env_close)" | hostile "an IMETHODCALL without NAME" GetClass "err 4"
echo "$(env_open)<SOMECALL NAME=\"GetClass\"/>$(env_close)" | hostile "neither IMETHODCALL nor METHODCALL" GetClass "err 4"

# ---- intrinsic calls --------------------------------------------------------------
icall GetClass "$(cname Msvm_Nothing)" | hostile "GetClass of an unknown class" GetClass "err 6"
icall GetClass "" | hostile "GetClass without ClassName" GetClass "err 4"
icall GetClass "$(cname Msvm_Error)<IPARAMVALUE NAME=\"Frobnicate\"><VALUE>TRUE</VALUE></IPARAMVALUE>" |
  hostile "GetClass with an unknown parameter" GetClass "err 4"
icall GetClass "$(cname Msvm_Error)<IPARAMVALUE NAME=\"IncludeQualifiers\"><VALUE>maybe</VALUE></IPARAMVALUE>" |
  hostile "GetClass with a boolean that is none" GetClass "err 4"
icall GetClass "<IPARAMVALUE NAME=\"ClassName\"><VALUE>Msvm_Error</VALUE></IPARAMVALUE>" |
  hostile "ClassName as a VALUE" GetClass "err 4"
icall GetClass "$(cname Msvm_Error)" | sed 's|<NAMESPACE NAME="v2"/>|<NAMESPACE NAME="cimv2"/>|' |
  hostile "another namespace" GetClass "err 3"
icall GetClass "$(cname Msvm_Error)" | sed "s|$NSP||" | hostile "no namespace" GetClass "err 4"
icall DeleteInstance "" | hostile "DeleteInstance" DeleteInstance "err 7"
icall ExecQuery "" | hostile "ExecQuery" ExecQuery "err 7"
icall FooBar "" | hostile "an unknown intrinsic" FooBar "err 7"
gi () { icall GetInstance "<IPARAMVALUE NAME=\"InstanceName\"><INSTANCENAME CLASSNAME=\"$1\">$2</INSTANCENAME></IPARAMVALUE>"; }
gi Msvm_ImageManagementService "$(kb CreationClassName Msvm_ImageManagementService)$(kb Name vhdsvc)" |
  hostile "GetInstance with missing keys" GetInstance "err 4"
gi Msvm_ImageManagementService "$(svc_keys Msvm_ImageManagementService vhdsvc not-this-host)" |
  hostile "GetInstance of another host's service" GetInstance "err 6"
gi Msvm_ImageManagementService "$(svc_keys Msvm_ImageManagementService vhdsvc "$HOST")$(kb Colour blue)" |
  hostile "GetInstance with an unknown key" GetInstance "err 4"
gi Msvm_ImageManagementService "$(svc_keys Msvm_ImageManagementService vhdsvc "$HOST")$(kb Name vhdsvc)" |
  hostile "GetInstance with a key given twice" GetInstance "err 4"
gi Msvm_Nothing "$(kb InstanceID x)" | hostile "GetInstance of an unknown class" GetInstance "err 5"
gi Msvm_ConcreteJob "$(kb InstanceID 00000000-0000-0000-0000-000000000000)" | hostile "GetInstance of no job" GetInstance "err 6"
gi Msvm_ConcreteJob "<KEYBINDING NAME=\"InstanceID\"><VALUE.REFERENCE/></KEYBINDING>" | hostile "a reference as a key" GetInstance "err 4"
gi Msvm_VirtualHardDiskSettingData "$(kb InstanceID "$DISKS/a.vhdx")" | hostile "GetInstance of an embedded-only class" GetInstance "err 6"
icall EnumerateInstances "$(cname Msvm_Nothing)" | hostile "EnumerateInstances of an unknown class" EnumerateInstances "err 5"
icall EnumerateInstanceNames "" | hostile "EnumerateInstanceNames without ClassName" EnumerateInstanceNames "err 4"
icall EnumerateInstances "$(cname Msvm_ConcreteJob)<IPARAMVALUE NAME=\"PropertyList\"><VALUE>JobState</VALUE></IPARAMVALUE>" |
  hostile "a PropertyList that is no array" EnumerateInstances "err 4"

# ---- extrinsic calls --------------------------------------------------------------
mcall Frobnicate "$IMSI" "" | hostile "an unknown method" Frobnicate "err 17"
mcall GetVirtualHardDiskState "$(inst Msvm_Nothing "$(kb InstanceID x)")" "" | hostile "a method of an unknown class" GetVirtualHardDiskState "err 5"
mcall GetError "$(inst Msvm_Error "$(kb InstanceID x)")" "" | hostile "a method of a class without methods" GetError "err 17"
mcall GetError "<LOCALCLASSPATH>$NSP<CLASSNAME NAME=\"Msvm_ConcreteJob\"/></LOCALCLASSPATH>" "" |
  hostile "a job method on the class" GetError "err 4"
mcall GetError "$(inst Msvm_ConcreteJob "$(kb InstanceID nosuchjob)")" "" | hostile "a job method on no job" GetError "err 6"
mcall GetVirtualHardDiskState "$(inst Msvm_ImageManagementService "$(kb Name vhdsvc)")" "$(pv Path "$DISKS/a.vhdx")" |
  hostile "a service path without its keys" GetVirtualHardDiskState "err 4"
mcall GetVirtualHardDiskState "$(inst Msvm_ImageManagementService "$(svc_keys Msvm_ImageManagementService other "$HOST")")" "$(pv Path "$DISKS/a.vhdx")" |
  hostile "a service path with another Name" GetVirtualHardDiskState "err 6"
mcall GetVirtualHardDiskState "$IMSI" "" | sed 's|<LOCALNAMESPACEPATH>.*</LOCALNAMESPACEPATH>|<LOCALNAMESPACEPATH><NAMESPACE NAME="root"/></LOCALNAMESPACEPATH>|' |
  hostile "a method in another namespace" GetVirtualHardDiskState "err 3"
mcall GetVirtualHardDiskState "$IMSI" "$(pv Path "$DISKS/a.vhdx")$(pv Colour blue)" |
  hostile "an unknown parameter" GetVirtualHardDiskState "rv 32773"
grep -q 'Colour' "$T/case" || fail "the unknown parameter is not named: $(cat "$T/case")"
mcall GetVirtualHardDiskState "$IMSI" "$(pv Path "$DISKS/a.vhdx")$(pv State x)" |
  hostile "an out-parameter sent in" GetVirtualHardDiskState "rv 32773"
mcall GetVirtualHardDiskState "$IMSI" "" | hostile "a missing parameter" GetVirtualHardDiskState "rv 32773"
mcall GetVirtualHardDiskState "$IMSI" "$(pv Path "$DISKS/a.vhdx")$(pv path "$DISKS/a.vhdx")" |
  hostile "a parameter given twice (in two cases)" GetVirtualHardDiskState "err 4"
mcall GetVirtualHardDiskState "$IMSI" "$(pv Path "$DISKS/a.vhdx" ' PARAMTYPE="string"')" |
  hostile "the right PARAMTYPE" GetVirtualHardDiskState "rv 0"
mcall GetVirtualDiskChanges "$IMSI" "$(changes_params 0 ' PARAMTYPE="string"')" | hostile "a wrong PARAMTYPE" GetVirtualDiskChanges "rv 32776"
mcall GetVirtualDiskChanges "$IMSI" "$(changes_params 0 ' PARAMTYPE="sint99"')" | hostile "an unknown PARAMTYPE" GetVirtualDiskChanges "rv 32776"
mcall GetVirtualDiskChanges "$IMSI" "$(changes_params 12abc)" | hostile "a number with letters" GetVirtualDiskChanges "rv 32776"
mcall GetVirtualDiskChanges "$IMSI" "$(changes_params -1)" | hostile "a negative uint64" GetVirtualDiskChanges "rv 32776"
mcall GetVirtualDiskChanges "$IMSI" "$(changes_params 18446744073709551616)" | hostile "beyond uint64" GetVirtualDiskChanges "rv 32776"
mcall GetVirtualDiskChanges "$IMSI" "$(changes_params 9223372036854775808)" | hostile "beyond int64" GetVirtualDiskChanges "rv 32773"
mcall GetVirtualDiskChanges "$IMSI" "$(changes_params 0x200)" | hostile "a hexadecimal uint64" GetVirtualDiskChanges "rv 32773"
grep -q 'LimitId' "$T/case" || fail "0x200 is a uint64 (DSP0201), the call fails on LimitId: $(cat "$T/case")"
mcall GetVirtualDiskChanges "$IMSI" "$(changes_params 0 ' EmbeddedObject="instance"')" |
  hostile "EmbeddedObject on a number" GetVirtualDiskChanges "rv 32776"
mcall GetVirtualHardDiskState "$IMSI" "<PARAMVALUE NAME=\"Path\"><VALUE.ARRAY><VALUE>a</VALUE></VALUE.ARRAY></PARAMVALUE>" |
  hostile "an array for a scalar" GetVirtualHardDiskState "rv 32776"
mcall GetVirtualHardDiskState "$IMSI" "<PARAMVALUE NAME=\"Path\"><VALUE.REFERENCE>$(inst Msvm_ConcreteJob "$(kb InstanceID x)")</VALUE.REFERENCE></PARAMVALUE>" |
  hostile "a reference for a string" GetVirtualHardDiskState "rv 32776"
mcall GetVirtualHardDiskState "$IMSI" "<PARAMVALUE NAME=\"Path\"><VALUE>a</VALUE><VALUE>b</VALUE></PARAMVALUE>" |
  hostile "two VALUEs" GetVirtualHardDiskState "rv 32776"
mcall GetVirtualHardDiskState "$IMSI" "$(pv Path /etc/passwd)" | hostile "a path outside the roots" GetVirtualHardDiskState "rv 32769"
mcall GetVirtualHardDiskState "$IMSI" "$(pv Path "$DISKS/../secret.txt")" | hostile "a path with .." GetVirtualHardDiskState "rv 32769"
ln -s "$T/secret.txt" "$DISKS/link.vhdx"
mcall GetVirtualHardDiskState "$IMSI" "$(pv Path "$DISKS/link.vhdx")" | hostile "a symlink out of the root" GetVirtualHardDiskState "rv 32769"
mcall GetVirtualHardDiskState "$IMSI" "$(pv Path "<![CDATA[$DISKS/a.vhdx]]>")" | hostile "a path in CDATA" GetVirtualHardDiskState "rv 0"
CT="$(inst Vhdkit_ChangeTrackingService "$(svc_keys Vhdkit_ChangeTrackingService Vhdkit_ChangeTrackingService "$HOST")")"
mcall SetChangeTracking "$CT" "$(pv Path "$DISKS/a.vhdx")$(pv Enabled maybe)" | hostile "a boolean that is none" SetChangeTracking "rv 32776"
mcall SetChangeTracking "$CT" "$(pv Path "$DISKS/a.vhdx")$(pv Enabled TRUE)$(pv Granularity 99999999999)" |
  hostile "a uint32 out of range" SetChangeTracking "rv 32776"
JOBP=$(inst Msvm_ConcreteJob "$(kb InstanceID x)")
mcall RequestStateChange "$JOBP" "$(pv InstanceID x)$(pv RequestedState 4)" | hostile "a key as a parameter" RequestStateChange "err 6"
# Embedded instances.
create () { mcall CreateVirtualHardDisk "$IMSI" "<PARAMVALUE NAME=\"VirtualDiskSettingData\"${2:-}><VALUE>$1</VALUE></PARAMVALUE>"; }
esc () { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g'; }
create "not an instance" | hostile "an embedded instance that is no XML" CreateVirtualHardDisk "rv 32776"
create "$(echo '<INSTANCE CLASSNAME="Msvm_VirtualHardDiskSettingData"><PROPERTY' | esc)" |
  hostile "a truncated embedded instance" CreateVirtualHardDisk "rv 32776"
create "$(printf '<!DOCTYPE INSTANCE [<!ENTITY x SYSTEM "file://%s">]><INSTANCE CLASSNAME="Msvm_VirtualHardDiskSettingData">%s</INSTANCE>' "$T/secret.txt" "$(prop Path string '&x;')" | esc)" |
  hostile "an external entity inside an embedded instance" CreateVirtualHardDisk "rv 32776"
grep -q 'DOCTYPE is not accepted' "$T/case" || fail "the embedded DOCTYPE: $(cat "$T/case")"
create "$(echo "$laughs<INSTANCE CLASSNAME=\"Msvm_VirtualHardDiskSettingData\">$(prop Path string '&i;')</INSTANCE>" | esc)" |
  hostile "billion laughs inside an embedded instance" CreateVirtualHardDisk "rv 32776"
create "<INSTANCE CLASSNAME=\"Msvm_Error\">$(prop Message string x)</INSTANCE>" |
  hostile "an embedded instance of another class" CreateVirtualHardDisk "rv 32776"
create "$(sd_inst "$(prop Path string "$DISKS/n.vhdx")$(prop Type uint16 3)$(prop Format uint16 3)$(prop MaxInternalSize string 1048576)")" |
  hostile "an embedded property of the wrong TYPE" CreateVirtualHardDisk "rv 32776"
create "$(sd_inst "$(prop Path string "$DISKS/n.vhdx")$(prop Type uint16 3)$(prop Format uint16 3)$(prop MaxInternalSize uint64 lots)")" |
  hostile "an embedded property that is no number" CreateVirtualHardDisk "rv 32776"
create "$(sd_inst "$(prop Path string "$DISKS/n.vhdx")$(prop Path string "$DISKS/m.vhdx")")" |
  hostile "an embedded property given twice" CreateVirtualHardDisk "rv 32773"
create "<INSTANCE>$(prop Path string x)</INSTANCE>" | hostile "an embedded instance without CLASSNAME" CreateVirtualHardDisk "rv 32776"
create "<INSTANCE CLASSNAME=\"Msvm_VirtualHardDiskSettingData\"><VALUE>x</VALUE></INSTANCE>" |
  hostile "an embedded instance holding a VALUE" CreateVirtualHardDisk "rv 32776"
create "$(sd_inst "$(prop Path string "$DISKS/n.vhdx")$(prop Type uint16 3)$(prop Format uint16 3)$(prop MaxInternalSize uint64 1048576)")" ' EmbeddedObject="object"' |
  hostile "a good embedded instance (EmbeddedObject)" CreateVirtualHardDisk "rv 4096"
create "$(sd_inst "$(prop Path string "$DISKS/n2.vhdx")$(prop Type uint16 3)$(prop Format uint16 3)$(prop MaxInternalSize uint64 1048576)" | esc)" ' EMBEDDEDOBJECT="instance" PARAMTYPE="string"' |
  hostile "a good escaped embedded instance (EMBEDDEDOBJECT)" CreateVirtualHardDisk "rv 4096"

ncases=$(wc -l < "$T/cases")
[ "$ncases" -ge 60 ] || fail "only $ncases hostile requests"
kill -0 "$DPID" || fail "vhdkitd died"
grep -qi -e 'segfault' -e 'assert' "$DLOG" && fail "the daemon log: $(cat "$DLOG")"
stop_daemon
echo "hostile: $ncases requests answered, vhdkitd served on"
