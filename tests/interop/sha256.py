#!/usr/bin/python3
"""sha256 of standard input (or of FILE), printed as hex.

coreutils' sha256sum does not use the CPU's SHA extensions and manages some
250 MB/s; hashing 10 GiB virtual disks with it dominated the test time.
hashlib (OpenSSL) does, and a 1 MiB pipe with large reads keeps the writer
from stalling on a 64 KiB pipe buffer.
"""
import fcntl
import hashlib
import sys

F_SETPIPE_SZ = 1031


def main(argv):
    f = open(argv[1], "rb", buffering=0) if len(argv) > 1 else sys.stdin.buffer.raw
    try:
        fcntl.fcntl(f.fileno(), F_SETPIPE_SZ, 1 << 20)
    except OSError:
        pass        # not a pipe, or not allowed: only slower
    h = hashlib.sha256()
    buf = bytearray(8 << 20)
    view = memoryview(buf)
    while True:
        n = f.readinto(buf)
        if not n:
            break
        h.update(view[:n])
    print(h.hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
