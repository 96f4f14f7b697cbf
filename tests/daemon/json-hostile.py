#!/usr/bin/env python3
"""Hostile requests against vhdkitd's JSON door (tests/daemon/test-daemon-json-hostile.sh).

Usage: json-hostile.py SOCKET DISKDIR OUTSIDEDIR
Each case is sent on its own connection over the Unix socket; the reply
must have the expected HTTP status and ReturnValue and, for an error, an
ErrorDescription that says something.  After every case the daemon must
still answer a good call.  Prints one line per failure and a summary;
exit status 0 only if every case passed.
"""
import json
import os
import socket
import sys
import threading
import time

SOCK, DISKS, OUTSIDE = sys.argv[1], sys.argv[2], sys.argv[3]
NS = "/root/virtualization/v2"
IMS = NS + "/Msvm_ImageManagementService/"
CTS = NS + "/Vhdkit_ChangeTrackingService/"
DISK = DISKS + "/a.vhdx"
G = 1 << 30


def raw(data, timeout=10.0):
    """Send DATA (bytes) on a new connection; return the whole reply."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(SOCK)
    out = b""
    try:
        s.sendall(data)
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        pass          # the daemon may drop a request it will not read
    s.close()
    return out


def request(method, url, body=b"", headers=None):
    h = {"Host": "localhost", "Connection": "close"}
    if headers:
        h.update(headers)
    if body is not None:
        h.setdefault("Content-Length", str(len(body)))
        h.setdefault("Content-Type", "application/json")
    head = "%s %s HTTP/1.1\r\n" % (method, url) + "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
    return raw(head.encode("latin-1") + (body or b""))


def parse(reply):
    head, _, body = reply.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ")[1])
    except (IndexError, ValueError):
        return None, None
    try:
        return status, json.loads(body.decode("utf-8"))
    except ValueError:
        return status, None


failures = []
count = 0


def check(name, reply, status, rc):
    global count
    count += 1
    st, obj = parse(reply)
    if st is None and status is None and rc is None:
        alive(name)           # no answer is fine for garbage; the daemon lives
        return
    if st is None:
        failures.append("%s: no HTTP reply (%r)" % (name, reply[:200]))
        return
    if status is not None and st != status:
        failures.append("%s: HTTP %s, expected %s: %r" % (name, st, status, reply[:300]))
        return
    if rc is None:
        return
    if not isinstance(obj, dict) or obj.get("ReturnValue") != rc:
        failures.append("%s: ReturnValue %r, expected %s: %r" % (name, obj and obj.get("ReturnValue"), rc, reply[-400:]))
        return
    if rc not in (0, 4096) and not (obj.get("ErrorDescription") or "").strip():
        failures.append("%s: ReturnValue %s without an ErrorDescription" % (name, rc))
    alive(name)


def alive(after):
    st, obj = parse(request("POST", CTS + "GetChangeTrackingState", json.dumps({"Path": DISK}).encode()))
    if st != 200 or not obj or obj.get("ReturnValue") != 0:
        failures.append("after %s: the daemon no longer answers a good call (%s %r)" % (after, st, obj))


def call(name, method, params, status, rc, url=None):
    body = params if isinstance(params, bytes) else json.dumps(params).encode()
    check(name, request("POST", url or IMS + method, body), status, rc)


def changes(**kw):
    p = {"Path": DISK, "LimitId": "", "TargetSnapshotId": None, "ByteOffset": 0, "ByteLength": G}
    p.update(kw)
    return p


# ---- wrong types (32776) ----
bad_values = [5, -1, 1.5, True, False, [], {}, ["x"], {"a": 1}]
for v in bad_values:
    call("Path=%r" % (v,), "GetVirtualHardDiskState", {"Path": v}, 200, 32776)
for v in ["0", -1, 1.5, True, [], {}, None, 2 ** 63]:
    p = changes(ByteOffset=v)
    rc = 32773 if v is None else 32776
    body = json.dumps(p).encode()
    if v == 2 ** 63:
        rc = 32776            # beyond jansson's integers: not valid input
        call("ByteOffset=2^63", "GetVirtualDiskChanges", body, 400, rc)
    else:
        call("ByteOffset=%r" % (v,), "GetVirtualDiskChanges", p, 200, rc)
for v in [1, True, [], {}]:
    call("LimitId=%r" % (v,), "GetVirtualDiskChanges", changes(LimitId=v), 200, 32776)
for v in ["yes", 1, 0, None, [], {}]:
    p = {"Path": DISK, "Enabled": v, "Granularity": None}
    call("Enabled=%r" % (v,), "SetChangeTracking", p, 200, 32773 if v is None else 32776, url=CTS + "SetChangeTracking")
for v in [-1, 2 ** 32, "64k", 1.0, []]:
    p = {"Path": DISK, "Enabled": True, "Granularity": v}
    call("Granularity=%r" % (v,), "SetChangeTracking", p, 200, 32776, url=CTS + "SetChangeTracking")
for v in ["x", 1, [], {"__CLASS": "Msvm_Other", "Path": DISKS + "/n.vhdx"}]:
    call("VirtualDiskSettingData=%r" % (v,), "CreateVirtualHardDisk", {"VirtualDiskSettingData": v}, 200, 32776)
for v in ["2", 2.0, {}, [2, "x"], ["2"]]:
    p = {"VHDSetPath": DISKS + "/s.vhds", "AdditionalInformation": v}
    call("AdditionalInformation=%r" % (v,), "GetVHDSetInformation", p, 200, 32776)

# ---- missing, unknown and null parameters (32773) ----
call("no parameters", "GetVirtualHardDiskState", {}, 200, 32773)
call("unknown parameter", "GetVirtualHardDiskState", {"Path": DISK, "Extra": 1}, 200, 32773)
call("wrong case", "GetVirtualHardDiskState", {"path": DISK}, 200, 32773)
call("out-parameter given", "GetVirtualHardDiskState", {"Path": DISK, "State": "x"}, 200, 32773)
call("Job given", "GetVirtualHardDiskState", {"Path": DISK, "Job": None}, 200, 32773)
call("Path null", "GetVirtualHardDiskState", {"Path": None}, 200, 32773)
for drop in ["Path", "LimitId", "TargetSnapshotId", "ByteOffset", "ByteLength"]:
    p = changes()
    del p[drop]
    call("GetVirtualDiskChanges without " + drop, "GetVirtualDiskChanges", p, 200, 32773)
for i in range(10):
    p = changes()
    p["X%d" % i] = i
    call("unknown member X%d" % i, "GetVirtualDiskChanges", p, 200, 32773)
call("body is an array", "GetVirtualHardDiskState", [DISK], 200, 32776)
# jansson takes only an object or an array as a whole document.
call("body is a string", "GetVirtualHardDiskState", b'"x"', 400, 32776)
call("body is a number", "GetVirtualHardDiskState", b"1", 400, 32776)
call("body is null", "GetVirtualHardDiskState", b"null", 400, 32776)

# ---- GetVirtualDiskChanges contract on a hostile window ----
call("ByteLength beyond the disk", "GetVirtualDiskChanges", changes(LimitId="rctX:00000000:0000:0000:0000:000000000000:00000001", ByteLength=2 * G), 200, None)
call("LimitId garbage", "GetVirtualDiskChanges", changes(LimitId="rctX:zzz"), 200, 32773)
call("LimitId very long", "GetVirtualDiskChanges", changes(LimitId="r" * 100000), 200, 32773)
call("LimitId with NUL", "GetVirtualDiskChanges", changes(LimitId="rctX:\u0000"), 400, 32776)
call("TargetSnapshotId on an image", "GetVirtualDiskChanges", changes(LimitId="x", TargetSnapshotId="y"), 200, None)

# ---- paths (32769 outside, 32779 missing, 32773 not absolute) ----
paths = [
    ("/etc/passwd", 32769), ("/", 32769), (OUTSIDE + "/secret.vhdx", 32769),
    (DISKS + "/../outside/secret.vhdx", 32769), (DISKS + "/./a.vhdx", 32769), (DISKS + "//..//a.vhdx", 32769),
    (DISKS + "/link-out.vhdx", 32769), (DISKS + "/dirlink/secret.vhdx", 32769), (DISKS + "/loop", 32769),
    (DISKS + "/nope.vhdx", 32779), (DISKS + "/nodir/x.vhdx", 32779), ("a.vhdx", 32773), ("", 32773),
    ("relative/../x", 32773), (DISKS, 32773), (DISKS + "/", 32773), (DISKS + "x/a.vhdx", 32769),
    ("/" + "a" * 5000, 32773), (DISKS + "/" + "b" * 300 + ".vhdx", 32773),
    (DISKS + "/a.vhdx\u0000/etc/passwd", "nul"), ("\\\\host\\share\\x.vhdx", 32773),
    (DISKS + "/fifo", 32773), (DISKS + "/dev-null-link", 32769),
]
for p, rc in paths:
    st = 200
    if rc == "nul":
        st, rc = 400, 32776       # JSON with \u0000 is refused as a whole
    call("Path %r" % p[:80], "GetVirtualHardDiskState", {"Path": p}, st, rc)
    call("Validate %r" % p[:80], "ValidateVirtualHardDisk", {"Path": p}, st, rc)
for p, rc in [(OUTSIDE + "/new.vhdx", 32769), (DISKS + "/../outside/new.vhdx", 32769),
              (DISKS + "/dirlink/new.vhdx", 32769), (DISKS + "/nodir/new.vhdx", 32779),
              (DISKS + "/a.vhdx", 32773), (DISKS + "/", 32773)]:
    sd = {"__CLASS": "Msvm_VirtualHardDiskSettingData", "Path": p, "Type": 3, "Format": 3,
          "MaxInternalSize": G, "BlockSize": 0, "LogicalSectorSize": 0, "PhysicalSectorSize": 0}
    call("Create at %r" % p, "CreateVirtualHardDisk", {"VirtualDiskSettingData": sd}, 200, rc)
for t, f in [(1, 3), (5, 3), (3, 2), (3, 1), (3, 4), (2, 3)]:
    sd = {"__CLASS": "Msvm_VirtualHardDiskSettingData", "Path": DISKS + "/t%d%d.vhdx" % (t, f), "Type": t,
          "Format": f, "MaxInternalSize": 0, "BlockSize": 0, "LogicalSectorSize": 0, "PhysicalSectorSize": 0}
    call("Create Type %d Format %d size 0" % (t, f), "CreateVirtualHardDisk", {"VirtualDiskSettingData": sd}, 200,
         32770 if f == 2 else 32773)

# ---- routes, HTTP methods, bodies ----
check("unknown class", request("POST", NS + "/Msvm_Nope/Foo", b"{}"), 404, 32773)
check("unknown method", request("POST", IMS + "Nope", b"{}"), 404, 32773)
check("no method", request("POST", NS + "/Msvm_ImageManagementService", b"{}"), 404, 32773)
check("outside the namespace", request("POST", "/root/cimv2/Msvm_ImageManagementService/GetVirtualHardDiskState", b"{}"), 404, 32773)
check("root URL", request("GET", "/", None), 404, 32773)
check("GET a method", request("GET", IMS + "GetVirtualHardDiskState", None), 404, 32770)
check("PUT", request("PUT", IMS + "GetVirtualHardDiskState", b"{}"), 405, 32770)
check("DELETE a job", request("DELETE", NS + "/Msvm_ConcreteJob/x", None), 405, 32770)
check("GET an unknown job", request("GET", NS + "/Msvm_ConcreteJob/nope", None), 404, 32773)
check("GET a job with ..", request("GET", NS + "/Msvm_ConcreteJob/../../etc/passwd", None), None, None)
check("empty body", request("POST", IMS + "GetVirtualHardDiskState", b""), 400, 32776)
check("truncated JSON", request("POST", IMS + "GetVirtualHardDiskState", b'{"Path":'), 400, 32776)
check("trailing garbage", request("POST", IMS + "GetVirtualHardDiskState", b'{"Path":"x"} x'), 400, 32776)
check("duplicate member", request("POST", IMS + "GetVirtualHardDiskState", json.dumps({"Path": DISK}).encode()[:-1] + b',"Path":"y"}'), 400, 32776)
check("invalid UTF-8", request("POST", IMS + "GetVirtualHardDiskState", b'{"Path":"\xff\xfe"}'), 400, 32776)
check("lone surrogate", request("POST", IMS + "GetVirtualHardDiskState", b'{"Path":"\\ud800"}'), 400, 32776)
check("NaN", request("POST", IMS + "GetVirtualDiskChanges", b'{"ByteOffset":NaN}'), 400, 32776)
check("deep nesting", request("POST", IMS + "GetVirtualHardDiskState", b"[" * 100000 + b"]" * 100000), None, None)
check("deep objects", request("POST", IMS + "GetVirtualHardDiskState", b'{"a":' * 5000 + b"1" + b"}" * 5000), None, None)
check("body over 1 MiB", request("POST", IMS + "GetVirtualHardDiskState", b'{"Path":"' + b"x" * (2 << 20) + b'"}'), 413, 32773)
check("many members", request("POST", IMS + "GetVirtualHardDiskState", json.dumps({"k%d" % i: i for i in range(50000)}).encode()), 200, 32773)
check("Content-Length lies (short)", request("POST", IMS + "GetVirtualHardDiskState", b'{"Path":"' + DISK.encode() + b'"}', {"Content-Length": "5"}), None, None)
check("huge header", request("POST", IMS + "GetVirtualHardDiskState", b"{}", {"X-Big": "y" * 200000}), None, None)
check("many headers", request("POST", IMS + "GetVirtualHardDiskState", b"{}", {"X-H%d" % i: "v" for i in range(3000)}), None, None)
check("chunked body", raw(b"POST " + IMS.encode() + b"GetVirtualHardDiskState HTTP/1.1\r\nHost: l\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n{\"Pat\r\n0\r\n\r\n"), 400, 32776)
check("HTTP/0.9 garbage", raw(b"\x00\x01\x02garbage\r\n\r\n"), None, None)
check("not HTTP at all", raw(os.urandom(4096)), None, None)
check("request line only", raw(b"POST " + IMS.encode() + b"GetVirtualHardDiskState HTTP/1.1\r\n\r\n"), None, None)
check("URL with NUL", raw(b"POST /root/virtualization/v2/Msvm_ImageManagementService/Get\x00X HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n"), None, None)
check("very long URL", request("POST", IMS + "x" * 100000, b"{}"), None, None)
check("class name of 200 bytes", request("POST", NS + "/" + "C" * 200 + "/M", b"{}"), 404, 32773)

# ---- job methods ----
call("RequestStateChange unknown job", "RequestStateChange", {"InstanceID": "nope", "RequestedState": 4, "TimeoutPeriod": None}, 200, 32773, url=NS + "/Msvm_ConcreteJob/RequestStateChange")
call("RequestStateChange state 2", "RequestStateChange", {"InstanceID": "nope", "RequestedState": 2, "TimeoutPeriod": None}, 200, 32773, url=NS + "/Msvm_ConcreteJob/RequestStateChange")
call("RequestStateChange state 70000", "RequestStateChange", {"InstanceID": "x", "RequestedState": 70000, "TimeoutPeriod": None}, 200, 32776, url=NS + "/Msvm_ConcreteJob/RequestStateChange")
call("GetError unknown job", "GetError", {"InstanceID": "../../x"}, 200, 32773, url=NS + "/Msvm_ConcreteJob/GetError")

# ---- slow and half-sent requests: the daemon keeps serving meanwhile ----
slow = []
for i in range(20):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(SOCK)
    s.sendall(b"POST " + IMS.encode() + b"GetVirtualHardDiskState HTTP/1.1\r\nHost: l\r\nContent-Length: 1000\r\n\r\n{\"Pa")
    slow.append(s)
t0 = time.time()
alive("20 half-sent requests")
if time.time() - t0 > 5:
    failures.append("a good call took %.1f s while 20 half-sent requests were open" % (time.time() - t0))
count += 1
# Many connections at once, more than the limit: none may break the daemon.
many = []
for i in range(300):
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(SOCK)
        many.append(s)
    except OSError:
        break
for s in many:
    s.close()
time.sleep(0.5)
alive("300 idle connections")
count += 1
for s in slow:
    s.close()

# ---- concurrent good and bad calls ----
errs = []
def worker(k):
    for i in range(20):
        if (i + k) % 2:
            st, obj = parse(request("POST", CTS + "GetChangeTrackingState", json.dumps({"Path": DISK}).encode()))
            if st != 200 or obj.get("ReturnValue") != 0:
                errs.append("concurrent good call %d/%d: %s %r" % (k, i, st, obj))
        else:
            st, obj = parse(request("POST", IMS + "GetVirtualHardDiskState", b'{"Path":5}'))
            if st != 200 or obj.get("ReturnValue") != 32776:
                errs.append("concurrent bad call %d/%d: %s %r" % (k, i, st, obj))
th = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
for t in th:
    t.start()
for t in th:
    t.join()
failures.extend(errs[:10])
count += 16 * 20

for f in failures:
    print("FAIL:", f)
print("%d hostile requests, %d failures" % (count, len(failures)))
sys.exit(1 if failures else 0)
