#!/usr/bin/env bash
# Metadata items with absurd values: virtual size above 64 TiB or not a
# sector multiple, block size not a power of two / below 1 MiB / above
# 256 MiB, sector sizes other than 512 or 4096, a missing required item,
# HasParent without a parent locator, an unknown required item (Not
# Supported, 32770) — and, as a control, an unknown optional item.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/badinput-lib.sh"

make_base
unknown=0a1b2c3d-4e5f-4a6b-9c7d-8e9fa0b1c2d3

meta_case () {  # NAME FIELD VALUE [CODE]
  local f; f=$(damaged "$1"); mut set-meta "$f" "$2" "$3"; refused "$f" "${4:-}"
}
case_size_above_64T ()   { meta_case vsize-64T virtual-size $(( (64 << 40) + M )); }
case_size_2_63 ()        { meta_case vsize-huge virtual-size 0x7ffffffffffffe00; }
case_size_unaligned ()   { meta_case vsize-odd virtual-size $((16*M + 100)); }
case_block_3M ()         { meta_case bs-3M block-size $((3*M)); }
case_block_512K ()       { meta_case bs-512K block-size $((512*1024)); }
case_block_512M ()       { meta_case bs-512M block-size $((512*M)); }
case_block_zero ()       { meta_case bs-0 block-size 0; }
case_logical_1024 ()     { meta_case lss-1024 logical-sector-size 1024; }
case_logical_0 ()        { meta_case lss-0 logical-sector-size 0; }
case_physical_1024 ()    { meta_case pss-1024 physical-sector-size 1024; }
case_has_parent_no_locator () { meta_case hasparent file-flags 2; }
case_unknown_required_item () {
  local f; f=$(damaged unk-item); mut add-meta "$f" "$unknown" 1; refused "$f" 32770
}
case_unknown_optional_item () {
  local f; f=$(damaged unk-opt-item); mut add-meta "$f" "$unknown" 0; still_reads "$f"
}
case_missing_virtual_size () {
  # Rename the VirtualDiskSize item's GUID and clear its IsRequired flag:
  # the image then has no virtual size at all (and no unknown required item).
  local f idx
  f=$(damaged no-vsize)
  idx=$("$PY" - "$f" "$MUT" <<'PY'
import sys, importlib.util
spec = importlib.util.spec_from_file_location("vhdxmut", sys.argv[2]); m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
img = m.Image(sys.argv[1], write=True)
it = img.item(m.VIRTUAL_DISK_SIZE)
entry = img.meta["offset"] + 32 + 32 * it["index"]
img.write(entry, m.guid_bytes("11111111-2222-4333-8444-555555555555"))
img.write(entry + 24, b"\0\0\0\0")   # no longer "required": only the size is missing
print(it["index"])
PY
)
  info "renamed metadata entry $idx"
  refused "$f"
}

run_cases case_size_above_64T case_size_2_63 case_size_unaligned \
  case_block_3M case_block_512K case_block_512M case_block_zero case_logical_1024 \
  case_logical_0 case_physical_1024 case_has_parent_no_locator \
  case_unknown_required_item case_unknown_optional_item case_missing_virtual_size
