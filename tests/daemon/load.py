#!/usr/bin/env python3
"""load.py SOCKET --clients N --seconds S --call CLASS/METHOD=JSON[=>CHECK]...

Many clients of vhdkitd's JSON door at once, each on its own keep-alive
connection to the Unix socket SOCKET, each calling the given methods in
turn (round robin, starting at a different one per client) until S
seconds have passed.  A call counts as good when the HTTP status is 200,
ReturnValue is 0 (or 4096 for a job) and, with =>CHECK, the answer's
field CHECK (a JSON path such as ChangedByteOffsets) equals the value
given after the second "=" (JSON).  Prints one JSON line: calls, good,
bad (with the first few answers that were bad), calls per second, and
latency percentiles in milliseconds, per method and in all.  Exits 1 if
any call was bad or a client could not connect."""
import argparse, http.client, json, socket, sys, threading, time


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__('localhost', timeout=timeout)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


def field(v, path):
    for part in path.split('.'):
        v = v[int(part)] if isinstance(v, list) else v[part]
    return v


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * p / 100))] * 1000, 2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('socket')
    ap.add_argument('--clients', type=int, default=16)
    ap.add_argument('--seconds', type=float, default=5)
    ap.add_argument('--timeout', type=float, default=60)
    ap.add_argument('--call', action='append', required=True)
    a = ap.parse_args()
    calls = []
    for c in a.call:
        target, _, rest = c.partition('=')
        body, _, check = rest.partition('=>')
        want = None
        if check:
            path, _, wv = check.partition('=')
            want = (path, json.loads(wv))
        json.loads(body)
        calls.append((target, body.encode(), want))

    lock = threading.Lock()
    lat = {t: [] for t, _, _ in calls}
    bad, errors = [], []
    start = threading.Barrier(a.clients + 1)
    stop_at = [0.0]

    def client(k):
        try:
            conn = UnixHTTP(a.socket, a.timeout)
            conn.connect()
        except OSError as e:
            with lock:
                errors.append('client %d: %s' % (k, e))
            start.wait()
            return
        start.wait()
        i = k
        mine = {t: [] for t in lat}
        mybad = []
        while time.monotonic() < stop_at[0]:
            t, body, want = calls[i % len(calls)]
            i += 1
            t0 = time.monotonic()
            try:
                conn.request('POST', '/root/virtualization/v2/' + t, body,
                             {'Content-Type': 'application/json'})
                r = conn.getresponse()
                text = r.read()
                dt = time.monotonic() - t0
                ok = r.status == 200
                v = json.loads(text) if ok else None
                ok = ok and v.get('ReturnValue') in (0, 4096)
                if ok and want:
                    ok = field(v, want[0]) == want[1]
            except Exception as e:       # a reset, a timeout, bad JSON
                dt = time.monotonic() - t0
                ok, text = False, repr(e).encode()
                conn.close()
                conn = UnixHTTP(a.socket, a.timeout)
            mine[t].append(dt)
            if not ok:
                mybad.append('%s: %s' % (t, text[:300].decode('utf-8', 'replace')))
        with lock:
            for t in mine:
                lat[t].extend(mine[t])
            bad.extend(mybad)

    ths = [threading.Thread(target=client, args=(k,)) for k in range(a.clients)]
    for th in ths:
        th.start()
    t0 = time.monotonic()
    stop_at[0] = t0 + a.seconds + 0.0
    start.wait()
    t0 = time.monotonic()
    stop_at[0] = t0 + a.seconds
    for th in ths:
        th.join()
    el = time.monotonic() - t0
    alls = [x for v in lat.values() for x in v]
    res = {
        'clients': a.clients, 'seconds': round(el, 2), 'calls': len(alls),
        'good': len(alls) - len(bad), 'bad': len(bad), 'connect_errors': errors[:5],
        'calls_per_second': round(len(alls) / el, 1),
        'ms': {'p50': pct(alls, 50), 'p99': pct(alls, 99), 'max': pct(alls, 100)},
        'per_method': {t: {'calls': len(v), 'p50': pct(v, 50), 'p99': pct(v, 99)} for t, v in lat.items()},
        'first_bad': bad[:5],
    }
    print(json.dumps(res))
    sys.exit(1 if bad or errors else 0)


if __name__ == '__main__':
    main()
