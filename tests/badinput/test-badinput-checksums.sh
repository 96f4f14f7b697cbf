#!/usr/bin/env bash
# Bad CRC-32C in headers and region tables.  One bad header: the image still
# opens from the other one (whichever was current) and reads its content;
# both bad: refused.  Both region tables bad: refused.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/badinput-lib.sh"

make_base
s1=$("$PY" "$MUT" get "$T/base.vhdx" headers.0.seq)
s2=$("$PY" "$MUT" get "$T/base.vhdx" headers.1.seq)
info "header sequence numbers: $s1, $s2"

case_header1_crc () {
  local f; f=$(damaged crc-h1); mut break-header-crc "$f" 1; still_reads "$f"
}
case_header2_crc () {
  local f; f=$(damaged crc-h2); mut break-header-crc "$f" 2; still_reads "$f"
}
# The one to use is the valid one, even when the damaged one has the higher
# sequence number.
case_newer_header_crc () {
  local f; f=$(damaged crc-newer)
  mut set-header "$f" 1 seq $(( (s1 > s2 ? s1 : s2) + 5 ))
  mut break-header-crc "$f" 1
  still_reads "$f"
}
case_both_headers_crc () {
  local f; f=$(damaged crc-hh); mut break-header-crc "$f" 1; mut break-header-crc "$f" 2; refused "$f"
}
case_both_region_tables_crc () {
  local f; f=$(damaged crc-rr); mut break-region-crc "$f" 1; mut break-region-crc "$f" 2; refused "$f"
}
case_region_table1_crc () {
  local f; f=$(damaged crc-r1); mut break-region-crc "$f" 1
  survives "$f"
  if "$VHDKIT" read "$f" >"$T/r.out" 2>/dev/null; then
    same "read with region table 1 checksum bad" "$(file_sha "$T/r.out")" "$(file_sha "$T/base.raw")"
  fi
}
# A header with a valid checksum but an unknown version (2) is not VHDX v1.
case_header_version () {
  local f; f=$(damaged version); mut set-header "$f" both version 2; refused "$f"
}

run_cases case_header1_crc case_header2_crc case_newer_header_crc case_both_headers_crc \
  case_both_region_tables_crc case_region_table1_crc case_header_version
