#!/usr/bin/python3
"""Read a VHDX (optionally a differencing chain) with libvhdi (pyvhdi).

  vhdi_read.py sha  IMAGE [PARENT [GRANDPARENT ...]]   sha256 of the disk
  vhdi_read.py dump IMAGE OUT [PARENT ...]              raw copy to OUT
  vhdi_read.py range IMAGE OFFSET LENGTH [PARENT ...]   sha256 of a range
  vhdi_read.py size IMAGE                               media size

Parents are given nearest first and attached with set_parent(), base first.
"""
import hashlib
import sys

import pyvhdi

CHUNK = 4 << 20


def open_chain(paths):
    files = []
    for p in paths:
        f = pyvhdi.file()
        f.open(p)
        files.append(f)
    # Attach from the base upwards so each parent is complete when attached.
    for i in range(len(files) - 2, -1, -1):
        files[i].set_parent(files[i + 1])
    return files


def chunks(f):
    size = f.get_media_size()
    off = 0
    while off < size:
        n = min(CHUNK, size - off)
        data = f.read_buffer_at_offset(n, off)
        if data is None or len(data) != n:
            raise SystemExit("libvhdi: short read at %d (%s bytes)" %
                             (off, None if data is None else len(data)))
        yield data
        off += n


def main(argv):
    cmd = argv[1]
    if cmd == "sha":
        files = open_chain(argv[2:])
        h = hashlib.sha256()
        for data in chunks(files[0]):
            h.update(data)
        print(h.hexdigest())
    elif cmd == "dump":
        files = open_chain([argv[2]] + argv[4:])
        with open(argv[3], "wb") as out:
            for data in chunks(files[0]):
                out.write(data)
    elif cmd == "range":
        files = open_chain([argv[2]] + argv[5:])
        off, length = int(argv[3]), int(argv[4])
        data = files[0].read_buffer_at_offset(length, off)
        if data is None or len(data) != length:
            raise SystemExit("libvhdi: short read at %d" % off)
        print(hashlib.sha256(data).hexdigest())
    elif cmd == "size":
        files = open_chain(argv[2:3])
        print(files[0].get_media_size())
    else:
        raise SystemExit("usage: vhdi_read.py sha|dump|size IMAGE ...")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
