#!/usr/bin/python3
"""vhdsmut — read and deliberately damage VHD Set files (docs/FORMAT-vhds.md).

The set tests (tests/set/) and the fuzz seed script use this one helper, so
that the layout of a `.vhds` file lives in exactly one place outside the
library.  It is written from the format document, independently of lib/set/,
on purpose: a test that reused the library's own parser could not catch the
library's misreading of the format.  The CRC-32C and the GUID byte order are
vhdxmut's (the same algorithm and the same MS-VHDX GUIDs).

Every mutation edits the file IN PLACE: callers copy the set first.  A
mutation of a copy recomputes that copy's CRC unless --keep-crc is given
(so that exactly one thing is wrong with the file).

Usage: vhdsmut.py COMMAND FILE [ARGS...]

  dump FILE                      every field of both copies, as JSON, with
                                 this tool's own verdict on each copy
                                 ("valid", "problems")
  get FILE KEY                   one value of the dump; KEY is dotted:
                                 A.seq, B.valid, A.members.1.name,
                                 current.leaf, current.records.0.id, file_size
  set FILE COPY FIELD VALUE [FIELD VALUE...] [--keep-crc]
                                 COPY is A, B or both; fields below
  fix-crc FILE COPY              recompute the CRC of the copy
  break-crc FILE COPY            flip one bit of the stored CRC
  swap-names FILE COPY I J       exchange the names of members I and J
  copy FILE FROM TO              copy one copy's LENGTH bytes over the other
  patch FILE OFFSET HEX          write raw bytes at a file offset (no CRC)
  truncate FILE SIZE             cut (or extend) the file; SIZE may be a sum
                                 of numbers with K/M suffixes: 1M+200

Fields (VALUE: a number, decimal or 0x..., "none" for 0xFFFFFFFF; a GUID;
a text; or "hex:..." for raw bytes):
  header:  magic crc version seq length members records leaf set_guid
           pending_op pending_child pending_parent
  member:  member.N.parent  member.N.name  (a name of exactly 256 bytes is
           written without a terminating NUL)
  record:  record.N.id  record.N.time  record.N.member  record.N.flags
           record.N.epoch  record.N.generation
Records are located after as many members as the copy's header says when
the command runs: set record fields before changing the member count.
"""

import json
import os
import struct
import sys

sys.dont_write_bytecode = True        # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "badinput"))
from vhdxmut import crc32c, guid_bytes, guid_str  # noqa: E402

KiB = 1024
MiB = 1024 * KiB

MAGIC = b"VHDKSET1"
COPY_OFFSETS = {"A": 0, "B": 1 * MiB}
COPY_MAX = 1 * MiB
HEADER_SIZE = 128
MEMBER_SIZE = 288
RECORD_SIZE = 64
NAME_SIZE = 256
MAX_MEMBERS = 1024
MAX_RECORDS = 4096
NONE = 0xFFFFFFFF
ZERO_GUID = "00000000-0000-0000-0000-000000000000"
MAX_GENERATION = 0x7FFFFFF0

# name: (offset in the header, struct format or "guid"/"bytes8")
HEADER_FIELDS = {
    "magic": (0, "bytes8"),
    "crc": (8, "<I"),
    "version": (12, "<I"),
    "seq": (16, "<Q"),
    "length": (24, "<I"),
    "members": (28, "<I"),
    "records": (32, "<I"),
    "leaf": (36, "<I"),
    "set_guid": (40, "guid"),
    "pending_op": (56, "<I"),
    "pending_child": (60, "<I"),
    "pending_parent": (64, "<I"),
}
MEMBER_FIELDS = {
    "parent": (0, "<I"),
    "name": (32, "name"),
}
RECORD_FIELDS = {
    "id": (0, "guid"),
    "time": (16, "<Q"),
    "member": (24, "<I"),
    "flags": (28, "<I"),
    "epoch": (32, "guid"),
    "generation": (48, "<I"),
}


def _num(text):
    """An integer: decimal, 0x..., with an optional K/M/G suffix, "none" for
    0xFFFFFFFF, or a sum of those (1M+200)."""
    text = str(text).strip()
    if text.lower() == "none":
        return NONE
    if "+" in text:
        return sum(_num(p) for p in text.split("+"))
    mult = {"K": KiB, "M": MiB, "G": 1024 * MiB}
    if text and text[-1].upper() in mult:
        return int(text[:-1], 0) * mult[text[-1].upper()]
    return int(text, 0)


def _raw(text, size=None):
    """Bytes from "hex:..." or from a UTF-8 text."""
    text = str(text)
    if text.startswith("hex:"):
        b = bytes.fromhex(text[4:])
    else:
        b = text.encode("utf-8", "surrogateescape")
    if size is not None and len(b) > size:
        raise SystemExit("vhdsmut: value is %d bytes, the field only %d" % (len(b), size))
    return b


def _name_text(raw):
    """A member name as stored: up to the first NUL (or all 256 bytes)."""
    end = raw.find(b"\0")
    b = raw if end < 0 else raw[:end]
    return b.decode("utf-8", "surrogateescape")


class SetFile:
    def __init__(self, path, write=False):
        self.path = path
        self.f = open(path, "r+b" if write else "rb")

    def close(self):
        self.f.close()

    def size(self):
        self.f.seek(0, 2)
        return self.f.tell()

    def read(self, off, n):
        self.f.seek(off)
        return self.f.read(n)

    def write(self, off, data):
        self.f.seek(off)
        self.f.write(data)
        self.f.flush()

    # -- one copy --

    def copy_bytes(self, c, n):
        """N bytes of copy C, zero-padded where the file ends first."""
        n = max(0, min(n, COPY_MAX))
        b = self.read(COPY_OFFSETS[c], n)
        return b + b"\0" * (n - len(b))

    def header(self, c):
        return self.read(COPY_OFFSETS[c], HEADER_SIZE)

    def hfield(self, c, name):
        off, fmt = HEADER_FIELDS[name]
        raw = self.read(COPY_OFFSETS[c] + off, 16)
        if fmt == "bytes8":
            return raw[:8]
        if fmt == "guid":
            return guid_str(raw[:16])
        return struct.unpack_from(fmt, raw.ljust(8, b"\0"))[0]

    def crc_of(self, c):
        length = self.hfield(c, "length")
        b = bytearray(self.copy_bytes(c, length))
        if len(b) >= 12:
            b[8:12] = b"\0\0\0\0"
        return crc32c(bytes(b))

    def fix_crc(self, c):
        self.write(COPY_OFFSETS[c] + 8, struct.pack("<I", self.crc_of(c)))

    def break_crc(self, c):
        crc = self.hfield(c, "crc")
        self.write(COPY_OFFSETS[c] + 8, struct.pack("<I", crc ^ 0x00400000))

    def field_location(self, c, field):
        """(file offset, format) of a header, member or record field."""
        base = COPY_OFFSETS[c]
        parts = field.split(".")
        if len(parts) == 1 and field in HEADER_FIELDS:
            off, fmt = HEADER_FIELDS[field]
            return base + off, fmt
        if len(parts) == 3 and parts[0] == "member" and parts[2] in MEMBER_FIELDS:
            off, fmt = MEMBER_FIELDS[parts[2]]
            return base + HEADER_SIZE + MEMBER_SIZE * int(parts[1]) + off, fmt
        if len(parts) == 3 and parts[0] == "record" and parts[2] in RECORD_FIELDS:
            off, fmt = RECORD_FIELDS[parts[2]]
            m = self.hfield(c, "members")
            return (base + HEADER_SIZE + MEMBER_SIZE * m + RECORD_SIZE * int(parts[1])
                    + off, fmt)
        raise SystemExit("vhdsmut: unknown field %r (see --help)" % field)

    def set_field(self, c, field, value):
        off, fmt = self.field_location(c, field)
        if fmt == "bytes8":
            data = _raw(value, 8).ljust(8, b"\0")
        elif fmt == "guid":
            data = _raw(value, 16) if str(value).startswith("hex:") else guid_bytes(value)
        elif fmt == "name":
            data = _raw(value, NAME_SIZE).ljust(NAME_SIZE, b"\0")
        else:
            data = struct.pack(fmt, _num(value) & ((1 << (8 * struct.calcsize(fmt))) - 1))
        self.write(off, data)

    # -- parsing (tolerant: records what is wrong instead of raising) --

    def parse_copy(self, c):
        base = COPY_OFFSETS[c]
        fsize = self.size()
        d = {"copy": c, "offset": base, "present": fsize >= base + HEADER_SIZE}
        problems = []
        if not d["present"]:
            d.update(valid=False, problems=["copy header beyond the end of the file "
                                            "(file is %d bytes)" % fsize])
            return d
        h = self.header(c)
        (magic, crc, version, seq, length, nm, nr, leaf) = struct.unpack_from(
            "<8sIIQIIII", h, 0)
        pop, pchild, pparent = struct.unpack_from("<III", h, 56)
        d.update(magic=magic.decode("latin-1"), crc=crc, version=version, seq=seq,
                 length=length, n_members=nm, n_records=nr, leaf=leaf,
                 set_guid=guid_str(h[40:56]), pending_op=pop,
                 pending_child=pchild, pending_parent=pparent)
        if magic != MAGIC:
            problems.append("bad magic %r" % magic)
        if version != 1:
            problems.append("version %d" % version)
        if length < HEADER_SIZE or length > COPY_MAX:
            problems.append("length %d out of range" % length)
        elif base + length > fsize:
            problems.append("length %d runs past the end of the file" % length)
        d["crc_computed"] = self.crc_of(c)
        d["crc_ok"] = d["crc_computed"] == crc
        if not d["crc_ok"]:
            problems.append("CRC 0x%08x, computed 0x%08x" % (crc, d["crc_computed"]))
        if not 1 <= nm <= MAX_MEMBERS:
            problems.append("%d members" % nm)
        if nr > MAX_RECORDS:
            problems.append("%d records" % nr)
        if length != HEADER_SIZE + MEMBER_SIZE * nm + RECORD_SIZE * nr:
            problems.append("length %d does not fit %d members and %d records"
                            % (length, nm, nr))
        # Members and records, as far as they lie inside the copy's room.
        room = self.copy_bytes(c, COPY_MAX)
        members = []
        for i in range(min(nm, MAX_MEMBERS)):
            o = HEADER_SIZE + MEMBER_SIZE * i
            if o + MEMBER_SIZE > len(room):
                break
            parent = struct.unpack_from("<I", room, o)[0]
            raw = room[o + 32:o + 32 + NAME_SIZE]
            members.append({"index": i, "parent": parent, "name": _name_text(raw),
                            "name_terminated": b"\0" in raw})
        records = []
        rbase = HEADER_SIZE + MEMBER_SIZE * min(nm, MAX_MEMBERS)
        for j in range(min(nr, MAX_RECORDS)):
            o = rbase + RECORD_SIZE * j
            if o + RECORD_SIZE > len(room):
                break
            t, mem, flags = struct.unpack_from("<QII", room, o + 16)
            gen = struct.unpack_from("<I", room, o + 48)[0]
            records.append({"index": j, "id": guid_str(room[o:o + 16]),
                            "creation_time_ns": t, "member": mem, "flags": flags,
                            "epoch": guid_str(room[o + 32:o + 48]),
                            "generation": gen})
        d["members"] = members
        d["records"] = records
        problems += self._semantic_problems(d)
        d["problems"] = problems
        d["valid"] = not problems
        return d

    @staticmethod
    def _semantic_problems(d):
        p = []
        members, records = d["members"], d["records"]
        n = len(members)
        if n != d["n_members"] or len(records) != d["n_records"]:
            return p            # counts already reported
        roots = [m["index"] for m in members if m["parent"] == NONE]
        if len(roots) != 1:
            p.append("%d members without parent" % len(roots))
        for m in members:
            if m["parent"] != NONE and (m["parent"] >= n or m["parent"] == m["index"]):
                p.append("member %d: parent %d" % (m["index"], m["parent"]))
        for m in members:
            seen, i, steps = set(), m["index"], 0
            while i != NONE and i < n and steps <= MAX_MEMBERS:
                if i in seen:
                    p.append("member %d: parent loop" % m["index"])
                    break
                seen.add(i)
                i = members[i]["parent"]
                steps += 1
        if d["leaf"] >= n:
            p.append("leaf %d out of range" % d["leaf"])
        names = {}
        for m in members:
            nm = m["name"]
            if not m["name_terminated"]:
                p.append("member %d: name not NUL-terminated" % m["index"])
            if nm == "" or "/" in nm or nm in (".", ".."):
                p.append("member %d: bad name %r" % (m["index"], nm))
            if nm in names:
                p.append("members %d and %d: same name %r" % (names[nm], m["index"], nm))
            names.setdefault(nm, m["index"])
        ids, used = {}, {}
        for r in records:
            if r["id"] == ZERO_GUID:
                p.append("record %d: zero ID" % r["index"])
            if r["id"] in ids:
                p.append("records %d and %d: same ID" % (ids[r["id"]], r["index"]))
            ids.setdefault(r["id"], r["index"])
            mem = r["member"]
            if mem != NONE:
                if mem >= n:
                    p.append("record %d: member %d out of range" % (r["index"], mem))
                if mem == d["leaf"]:
                    p.append("record %d: names the leaf" % r["index"])
                if mem in used:
                    p.append("records %d and %d: same member" % (used[mem], r["index"]))
                used.setdefault(mem, r["index"])
            if r["flags"] & 1:
                if r["epoch"] == ZERO_GUID:
                    p.append("record %d: zero RCT epoch" % r["index"])
                if not 1 <= r["generation"] <= MAX_GENERATION:
                    p.append("record %d: RCT generation %d" % (r["index"], r["generation"]))
        if d["pending_op"] not in (0, 1):
            p.append("pending operation %d" % d["pending_op"])
        if d["pending_op"] == 1:
            c, f = d["pending_child"], d["pending_parent"]
            if c >= n or f >= n or members[c]["parent"] != f:
                p.append("pending merge %d into %d" % (c, f))
        return p

    def summary(self):
        copies = {c: self.parse_copy(c) for c in ("A", "B")}
        valid = [copies[c] for c in ("A", "B") if copies[c]["valid"]]
        cur = max(valid, key=lambda x: x["seq"]) if valid else None
        return {"file_size": self.size(), "A": copies["A"], "B": copies["B"],
                "current": cur}


def _copies(which):
    if which == "both":
        return ("A", "B")
    if which in COPY_OFFSETS:
        return (which,)
    raise SystemExit("vhdsmut: copy must be A, B or both, not %r" % which)


def cmd_dump(s):
    print(json.dumps(s.summary(), indent=1))


def cmd_get(s, key):
    v = s.summary()
    for part in key.split("."):
        if v is None:
            raise SystemExit("vhdsmut: %s: no %s (no valid copy?)" % (s.path, key))
        v = v[int(part)] if isinstance(v, list) else v[part]
    if isinstance(v, bool):
        v = "true" if v else "false"
    print(v)


def cmd_set(s, which, *args):
    args = list(args)
    keep = "--keep-crc" in args
    args = [a for a in args if a != "--keep-crc"]
    if not args or len(args) % 2:
        raise SystemExit("vhdsmut: set needs FIELD VALUE pairs")
    for c in _copies(which):
        for field, value in zip(args[0::2], args[1::2]):
            s.set_field(c, field, value)
        if not keep and not any(f == "crc" for f in args[0::2]):
            s.fix_crc(c)


def cmd_fix_crc(s, which):
    for c in _copies(which):
        s.fix_crc(c)


def cmd_break_crc(s, which):
    for c in _copies(which):
        s.break_crc(c)


def cmd_swap_names(s, which, i, j):
    for c in _copies(which):
        oi, _ = s.field_location(c, "member.%d.name" % int(i))
        oj, _ = s.field_location(c, "member.%d.name" % int(j))
        a, b = s.read(oi, NAME_SIZE), s.read(oj, NAME_SIZE)
        s.write(oi, b)
        s.write(oj, a)
        s.fix_crc(c)


def cmd_copy(s, src, dst):
    length = s.hfield(src, "length")
    s.write(COPY_OFFSETS[dst], s.copy_bytes(src, length))


def cmd_patch(s, offset, hexbytes):
    s.write(_num(offset), bytes.fromhex(hexbytes))


def cmd_truncate(s, size):
    s.f.truncate(_num(size))


COMMANDS = {
    "dump": (cmd_dump, False),
    "get": (cmd_get, False),
    "set": (cmd_set, True),
    "fix-crc": (cmd_fix_crc, True),
    "break-crc": (cmd_break_crc, True),
    "swap-names": (cmd_swap_names, True),
    "copy": (cmd_copy, True),
    "patch": (cmd_patch, True),
    "truncate": (cmd_truncate, True),
}


def main(argv):
    if len(argv) >= 2 and argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0
    if len(argv) < 3 or argv[1] not in COMMANDS:
        sys.stderr.write("usage: vhdsmut.py {%s} FILE [ARGS...]  (--help for more)\n"
                         % "|".join(COMMANDS))
        return 2
    fn, write = COMMANDS[argv[1]]
    s = SetFile(argv[2], write=write)
    try:
        fn(s, *argv[3:])
    except TypeError as e:
        raise SystemExit("vhdsmut: %s: wrong arguments (%s)" % (argv[1], e))
    finally:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
