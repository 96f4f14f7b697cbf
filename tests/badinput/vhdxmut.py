#!/usr/bin/python3
"""vhdxmut — read and deliberately damage VHDX structures (MS-VHDX 2.2-2.6).

The bad-input tests (tests/badinput/), the corpus tests (to give a parent the
DataWriteGuid a real child expects) and the interop tests share this one
helper, so that the on-disk layout and the CRC-32C live in exactly one place
outside the library.  It is written from the specification, independently of
lib/, on purpose: a test that reused the library's own parser could not catch
the library's misreading of the format.

Every mutation edits the file IN PLACE: callers copy the image first.  A
mutation recomputes a checksum only where the test wants the checksum to be
valid (so that exactly one thing is wrong with the file).

Usage: vhdxmut.py COMMAND FILE [ARGS...]   (see COMMANDS at the bottom)
"""

import json
import struct
import sys
import uuid

KiB = 1024
MiB = 1024 * KiB

FILE_ID_OFFSET = 0
HEADER_OFFSETS = (64 * KiB, 128 * KiB)
HEADER_SIZE = 4 * KiB
REGION_OFFSETS = (192 * KiB, 256 * KiB)
REGION_SIZE = 64 * KiB

BAT_REGION = "2dc27766-f623-4200-9d64-115e9bfd4a08"
METADATA_REGION = "8b7ca206-4790-4b9a-b8fe-575f050f886e"

FILE_PARAMETERS = "caa16737-fa36-4d43-b3b6-33f0aa44e76b"
VIRTUAL_DISK_SIZE = "2fa54224-cd1b-4876-b211-5dbed83bf4b8"
VIRTUAL_DISK_ID = "beca12ab-b2e6-4523-93ef-c309e000c746"
LOGICAL_SECTOR_SIZE = "8141bf1d-a96f-4709-ba47-f233a8faab5f"
PHYSICAL_SECTOR_SIZE = "cda348c7-445d-4471-9cc9-e9885251c556"
PARENT_LOCATOR = "a8d35f2d-b30b-454d-abf7-d3d84834ab0c"
VHDX_LOCATOR_TYPE = "b04aefb7-d19e-4a81-b789-25b8e9445913"

BAT_STATES = {"NOT_PRESENT": 0, "UNDEFINED": 1, "ZERO": 2, "UNMAPPED": 3,
              "FULLY_PRESENT": 6, "PARTIALLY_PRESENT": 7}
BAT_STATE_NAMES = {v: k for k, v in BAT_STATES.items()}


# ---- CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) ----

def _crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283, "CRC-32C self-test failed"


def checksum_of(block):
    """CRC-32C of a header or region table with its checksum field zeroed."""
    b = bytearray(block)
    b[4:8] = b"\0\0\0\0"
    return crc32c(b)


# ---- GUIDs: Microsoft mixed-endian binary form ----

def guid_bytes(text):
    return uuid.UUID(text.strip().strip("{}")).bytes_le


def guid_str(raw):
    return str(uuid.UUID(bytes_le=bytes(raw)))


# ---- the image ----

class Image:
    def __init__(self, path, write=False):
        self.path = path
        self.f = open(path, "r+b" if write else "rb")
        self.f.seek(0, 2)
        self.file_size = self.f.tell()
        self.parse()

    def close(self):
        self.f.close()

    def read(self, off, n):
        self.f.seek(off)
        return self.f.read(n)

    def write(self, off, data):
        self.f.seek(off)
        self.f.write(data)
        self.f.flush()

    # -- parsing (tolerant: records what is wrong instead of raising) --

    def parse(self):
        self.headers = [self._parse_header(o) for o in HEADER_OFFSETS]
        self.regions = [self._parse_region_table(o) for o in REGION_OFFSETS]
        valid = [h for h in self.headers if h["valid"]]
        self.current = max(valid, key=lambda h: h["seq"]) if valid else None
        rt = next((r for r in self.regions if r["valid"]), None)
        self.bat = self.meta = None
        if rt:
            for e in rt["entries"]:
                if e["guid"] == BAT_REGION:
                    self.bat = e
                elif e["guid"] == METADATA_REGION:
                    self.meta = e
        self.items = []
        self.block_size = self.virtual_size = None
        self.lss = self.pss = None
        self.has_parent = False
        if self.meta:
            self._parse_metadata()
        self.chunk_ratio = None
        if self.block_size and self.lss:
            self.chunk_ratio = (1 << 23) * self.lss // self.block_size

    def _parse_header(self, off):
        raw = self.read(off, HEADER_SIZE)
        h = {"offset": off, "valid": False}
        if len(raw) < HEADER_SIZE:
            return h
        sig, crc, seq = struct.unpack_from("<4sIQ", raw, 0)
        (log_version, version, log_length, log_offset) = struct.unpack_from(
            "<HHIQ", raw, 64)
        h.update(signature=sig.decode("latin-1"), checksum=crc,
                 crc_ok=(checksum_of(raw) == crc), seq=seq,
                 file_write_guid=guid_str(raw[16:32]),
                 data_write_guid=guid_str(raw[32:48]),
                 log_guid=guid_str(raw[48:64]), log_version=log_version,
                 version=version, log_length=log_length,
                 log_offset=log_offset)
        h["valid"] = sig == b"head" and h["crc_ok"]
        return h

    def _parse_region_table(self, off):
        raw = self.read(off, REGION_SIZE)
        r = {"offset": off, "valid": False, "entries": []}
        if len(raw) < REGION_SIZE:
            return r
        sig, crc, count = struct.unpack_from("<4sII", raw, 0)
        r.update(signature=sig.decode("latin-1"), checksum=crc,
                 crc_ok=(checksum_of(raw) == crc), count=count)
        for i in range(min(count, 2047)):
            base = 16 + 32 * i
            g = guid_str(raw[base:base + 16])
            foff, length, req = struct.unpack_from("<QII", raw, base + 16)
            r["entries"].append({"index": i, "guid": g, "offset": foff,
                                 "length": length, "required": req & 1})
        r["valid"] = sig == b"regi" and r["crc_ok"]
        return r

    def _parse_metadata(self):
        base = self.meta["offset"]
        raw = self.read(base, 64 * KiB)
        if raw[:8] != b"metadata":
            return
        count = struct.unpack_from("<H", raw, 10)[0]
        for i in range(min(count, 2047)):
            e = 32 + 32 * i
            g = guid_str(raw[e:e + 16])
            off, length, flags = struct.unpack_from("<III", raw, e + 16)
            self.items.append({"index": i, "guid": g, "offset": off,
                               "length": length, "flags": flags})
        for it in self.items:
            data = self.read(base + it["offset"], it["length"])
            if it["guid"] == FILE_PARAMETERS and len(data) >= 8:
                self.block_size, fl = struct.unpack("<II", data[:8])
                self.has_parent = bool(fl & 2)
            elif it["guid"] == VIRTUAL_DISK_SIZE and len(data) >= 8:
                self.virtual_size = struct.unpack("<Q", data[:8])[0]
            elif it["guid"] == LOGICAL_SECTOR_SIZE and len(data) >= 4:
                self.lss = struct.unpack("<I", data[:4])[0]
            elif it["guid"] == PHYSICAL_SECTOR_SIZE and len(data) >= 4:
                self.pss = struct.unpack("<I", data[:4])[0]

    def item(self, guid):
        for it in self.items:
            if it["guid"] == guid:
                return it
        raise SystemExit("vhdxmut: %s: no metadata item %s" % (self.path, guid))

    # -- headers and region tables --

    def patch_header(self, n, off, data, fix_crc=True):
        base = HEADER_OFFSETS[n - 1]
        self.write(base + off, data)
        if fix_crc:
            self.fix_header_crc(n)

    def fix_header_crc(self, n):
        base = HEADER_OFFSETS[n - 1]
        self.write(base + 4, struct.pack("<I", checksum_of(self.read(base, HEADER_SIZE))))

    def patch_region_table(self, n, off, data, fix_crc=True):
        base = REGION_OFFSETS[n - 1]
        self.write(base + off, data)
        if fix_crc:
            self.fix_region_crc(n)

    def fix_region_crc(self, n):
        base = REGION_OFFSETS[n - 1]
        self.write(base + 4, struct.pack("<I", checksum_of(self.read(base, REGION_SIZE))))

    def set_region(self, guid, offset=None, length=None, required=None):
        """Change one region entry in both tables; checksums stay valid."""
        for n, rt in enumerate(self.regions, 1):
            for e in rt["entries"]:
                if e["guid"] != guid:
                    continue
                off = 16 + 32 * e["index"] + 16
                o = e["offset"] if offset is None else offset
                ln = e["length"] if length is None else length
                rq = e["required"] if required is None else required
                self.patch_region_table(n, off, struct.pack("<QII", o, ln, rq), fix_crc=False)
            self.fix_region_crc(n)

    def add_region(self, guid, offset, length, required):
        """Append a region entry to both tables; checksums stay valid."""
        for n, rt in enumerate(self.regions, 1):
            count = rt["count"]
            entry = guid_bytes(guid) + struct.pack("<QII", offset, length, required)
            self.patch_region_table(n, 16 + 32 * count, entry, fix_crc=False)
            self.patch_region_table(n, 8, struct.pack("<I", count + 1), fix_crc=False)
            self.fix_region_crc(n)

    # -- metadata --

    def set_item_data(self, guid, data):
        it = self.item(guid)
        if len(data) > it["length"]:
            raise SystemExit("vhdxmut: item %s is only %d bytes" % (guid, it["length"]))
        self.write(self.meta["offset"] + it["offset"], data)

    def _free_item_offset(self, length):
        end = max([64 * KiB] + [it["offset"] + it["length"] for it in self.items])
        end = (end + 7) & ~7
        if end + length > self.meta["length"]:
            raise SystemExit("vhdxmut: no room in the metadata region")
        return end

    def add_item(self, guid, data, flags):
        count = len(self.items)
        off = self._free_item_offset(len(data))
        base = self.meta["offset"]
        entry = guid_bytes(guid) + struct.pack("<IIII", off, len(data), flags, 0)
        self.write(base + 32 + 32 * count, entry)
        self.write(base + 10, struct.pack("<H", count + 1))
        self.write(base + off, data)

    def read_locator(self):
        it = self.item(PARENT_LOCATOR)
        raw = self.read(self.meta["offset"] + it["offset"], it["length"])
        ltype = guid_str(raw[0:16])
        count = struct.unpack_from("<H", raw, 18)[0]
        kv = []
        for i in range(count):
            ko, vo, kl, vl = struct.unpack_from("<IIHH", raw, 20 + 12 * i)
            kv.append((raw[ko:ko + kl].decode("utf-16-le"),
                       raw[vo:vo + vl].decode("utf-16-le")))
        return ltype, kv

    def write_locator(self, ltype, kv):
        """Serialise a parent locator; keep its place if it fits there."""
        strings = b""
        table = b""
        head = 20 + 12 * len(kv)
        for k, v in kv:
            kb, vb = k.encode("utf-16-le"), v.encode("utf-16-le")
            ko = head + len(strings)
            strings += kb
            vo = head + len(strings)
            strings += vb
            table += struct.pack("<IIHH", ko, vo, len(kb), len(vb))
        blob = guid_bytes(ltype) + struct.pack("<HH", 0, len(kv)) + table + strings
        it = self.item(PARENT_LOCATOR)
        later = [o["offset"] for o in self.items if o["offset"] > it["offset"]]
        room = (min(later) if later else self.meta["length"]) - it["offset"]
        off = it["offset"]
        if len(blob) > room:
            others = [o for o in self.items if o is not it]
            end = max([64 * KiB] + [o["offset"] + o["length"] for o in others]
                      + [it["offset"] + it["length"]])
            off = (end + 7) & ~7
        base = self.meta["offset"]
        self.write(base + off, blob)
        self.write(base + 32 + 32 * it["index"] + 16, struct.pack("<II", off, len(blob)))

    # -- BAT --

    def bat_index(self, block):
        return block + block // self.chunk_ratio

    def bat_entry(self, index):
        return struct.unpack("<Q", self.read(self.bat["offset"] + 8 * index, 8))[0]

    def set_bat(self, block, state, offset_mb):
        value = (offset_mb << 20) | (state & 7)
        self.write(self.bat["offset"] + 8 * self.bat_index(block), struct.pack("<Q", value))

    def data_blocks(self):
        return -(-self.virtual_size // self.block_size)

    def summary(self):
        blocks = []
        if self.bat and self.chunk_ratio:
            for b in range(self.data_blocks()):
                v = self.bat_entry(self.bat_index(b))
                blocks.append({"block": b, "state": BAT_STATE_NAMES.get(v & 7, v & 7),
                               "offset": (v >> 20) << 20})
        return {
            "file_size": self.file_size,
            "headers": self.headers,
            "current_header": self.current["offset"] if self.current else None,
            "region_tables": self.regions,
            "bat": self.bat, "metadata": self.meta, "items": self.items,
            "block_size": self.block_size, "virtual_size": self.virtual_size,
            "logical_sector_size": self.lss, "physical_sector_size": self.pss,
            "has_parent": self.has_parent, "chunk_ratio": self.chunk_ratio,
            "blocks": blocks,
        }


# ---- commands ----

def _num(text):
    """An integer, with an optional K/M/G/T suffix (powers of 1024)."""
    text = text.strip()
    mult = {"K": KiB, "M": MiB, "G": 1024 * MiB, "T": 1024 * 1024 * MiB}
    if text and text[-1].upper() in mult:
        return int(text[:-1], 0) * mult[text[-1].upper()]
    return int(text, 0)


def _dirty_guard(img):
    """A mutation of the metadata or BAT is meaningless if a log replay
    would overwrite it: refuse to mutate an image whose log is active."""
    if img.current and img.current["log_guid"] != "00000000-0000-0000-0000-000000000000":
        raise SystemExit("vhdxmut: %s has an active log (LogGuid %s): mutate a cleanly "
                         "closed image" % (img.path, img.current["log_guid"]))


def cmd_dump(img):
    print(json.dumps(img.summary(), indent=1))


def cmd_get(img, key):
    """Print one value of the dump; KEY is dotted: bat.offset, current.seq."""
    s = img.summary()
    s["current"] = img.current
    v = s
    for part in key.split("."):
        v = v[int(part)] if isinstance(v, list) else v[part]
    print(v)


def cmd_set_data_write_guid(img, guid):
    for n in (1, 2):
        img.patch_header(n, 32, guid_bytes(guid))


def cmd_break_file_sig(img):
    img.write(FILE_ID_OFFSET, b"vhdxfilX")


def cmd_break_header_sig(img, n):
    img.patch_header(int(n), 0, b"hexd", fix_crc=True)


def cmd_break_header_crc(img, n):
    base = HEADER_OFFSETS[int(n) - 1]
    crc = struct.unpack("<I", img.read(base + 4, 4))[0]
    img.write(base + 4, struct.pack("<I", crc ^ 0x00010000))


def cmd_break_region_sig(img, n):
    img.patch_region_table(int(n), 0, b"regX", fix_crc=True)


def cmd_break_region_crc(img, n):
    base = REGION_OFFSETS[int(n) - 1]
    crc = struct.unpack("<I", img.read(base + 4, 4))[0]
    img.write(base + 4, struct.pack("<I", crc ^ 0x00000100))


def cmd_set_header(img, n, field, value):
    """Set a header field in header N (1, 2 or 'both'); checksum fixed."""
    fields = {"seq": (8, "<Q"), "log_version": (64, "<H"), "version": (66, "<H"),
              "log_length": (68, "<I"), "log_offset": (72, "<Q")}
    guids = {"file_write_guid": 16, "data_write_guid": 32, "log_guid": 48}
    for h in ((1, 2) if n == "both" else (int(n),)):
        if field in guids:
            img.patch_header(h, guids[field], guid_bytes(value))
        else:
            off, fmt = fields[field]
            img.patch_header(h, off, struct.pack(fmt, _num(value)))


def cmd_set_region(img, which, offset, length):
    _dirty_guard(img)
    guid = {"bat": BAT_REGION, "metadata": METADATA_REGION}[which]
    img.set_region(guid, offset=_num(offset), length=_num(length))


def cmd_add_region(img, guid, offset, length, required):
    _dirty_guard(img)
    img.add_region(guid, _num(offset), _num(length), int(required))


def cmd_set_meta(img, which, value):
    _dirty_guard(img)
    v = _num(value)
    if which == "virtual-size":
        img.set_item_data(VIRTUAL_DISK_SIZE, struct.pack("<Q", v))
    elif which == "block-size":
        it = img.item(FILE_PARAMETERS)
        flags = struct.unpack("<I", img.read(img.meta["offset"] + it["offset"] + 4, 4))[0]
        img.set_item_data(FILE_PARAMETERS, struct.pack("<II", v, flags))
    elif which == "file-flags":
        img.set_item_data(FILE_PARAMETERS, struct.pack("<II", img.block_size, v))
    elif which == "logical-sector-size":
        img.set_item_data(LOGICAL_SECTOR_SIZE, struct.pack("<I", v))
    elif which == "physical-sector-size":
        img.set_item_data(PHYSICAL_SECTOR_SIZE, struct.pack("<I", v))
    else:
        raise SystemExit("vhdxmut: unknown metadata field %s" % which)


def cmd_add_meta(img, guid, required, is_virtual_disk="0"):
    _dirty_guard(img)
    flags = (2 if int(is_virtual_disk) else 0) | (4 if int(required) else 0)
    img.add_item(guid, b"\0" * 8, flags)


def cmd_set_bat(img, block, state, offset_mb):
    _dirty_guard(img)
    st = BAT_STATES[state] if state in BAT_STATES else int(state, 0)
    img.set_bat(int(block), st, _num(offset_mb))


def cmd_set_locator(img, *assignments):
    """KEY=VALUE sets a locator entry, KEY= removes it."""
    _dirty_guard(img)
    ltype, kv = img.read_locator()
    d = dict(kv)
    order = [k for k, _ in kv]
    for a in assignments:
        k, _, v = a.partition("=")
        if v == "":
            d.pop(k, None)
        else:
            if k not in d:
                order.append(k)
            d[k] = v
    img.write_locator(ltype, [(k, d[k]) for k in order if k in d])


def cmd_retarget(img, new_name, linkage):
    """Point the parent locator at NEW_NAME (every path entry keeps its
    directory part and style, only the last component changes) with
    parent_linkage LINKAGE — to build parent loops and wrong parents."""
    _dirty_guard(img)
    ltype, kv = img.read_locator()
    out = []
    for k, v in kv:
        if k == "parent_linkage":
            v = "{%s}" % linkage.strip("{}")
        elif k.endswith("_path"):
            cut = max(v.rfind("/"), v.rfind("\\"))
            v = v[:cut + 1] + new_name
        out.append((k, v))
    img.write_locator(ltype, out)


def cmd_locator(img):
    ltype, kv = img.read_locator()
    print(json.dumps({"type": ltype, "entries": dict(kv)}, indent=1))


COMMANDS = {
    "dump": (cmd_dump, False),                      # FILE
    "get": (cmd_get, False),                        # FILE KEY
    "locator": (cmd_locator, False),                # FILE
    "set-data-write-guid": (cmd_set_data_write_guid, True),  # FILE GUID
    "break-file-sig": (cmd_break_file_sig, True),   # FILE
    "break-header-sig": (cmd_break_header_sig, True),  # FILE N
    "break-header-crc": (cmd_break_header_crc, True),  # FILE N
    "break-region-sig": (cmd_break_region_sig, True),  # FILE N
    "break-region-crc": (cmd_break_region_crc, True),  # FILE N
    "set-header": (cmd_set_header, True),           # FILE N|both FIELD VALUE
    "set-region": (cmd_set_region, True),           # FILE bat|metadata OFFSET LENGTH
    "add-region": (cmd_add_region, True),           # FILE GUID OFFSET LENGTH REQUIRED
    "set-meta": (cmd_set_meta, True),               # FILE FIELD VALUE
    "add-meta": (cmd_add_meta, True),               # FILE GUID REQUIRED [IS_VIRTUAL_DISK]
    "set-bat": (cmd_set_bat, True),                 # FILE BLOCK STATE OFFSET_MB
    "set-locator": (cmd_set_locator, True),         # FILE KEY=VALUE...
    "retarget": (cmd_retarget, True),               # FILE NEW_NAME LINKAGE_GUID
}


def main(argv):
    if len(argv) < 3 or argv[1] not in COMMANDS:
        sys.stderr.write("usage: vhdxmut.py {%s} FILE [ARGS...]\n" % "|".join(COMMANDS))
        return 2
    fn, write = COMMANDS[argv[1]]
    img = Image(argv[2], write=write)
    try:
        fn(img, *argv[3:])
    finally:
        img.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
