#!/usr/bin/env bash
# Wrong signatures ("vhdxfile", "head", "regi"), each with a valid checksum
# so that only the signature is wrong.  One bad header is tolerated (the
# other one is used); both bad, or a bad file identifier, or both region
# tables bad, is refused.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/badinput-lib.sh"

make_base

case_file_identifier () {
  local f; f=$(damaged file-id); mut break-file-sig "$f"; refused "$f"
}
case_both_headers () {
  local f; f=$(damaged heads); mut break-header-sig "$f" 1; mut break-header-sig "$f" 2; refused "$f"
}
case_header1_only () {
  local f; f=$(damaged head1); mut break-header-sig "$f" 1; still_reads "$f"
}
case_header2_only () {
  local f; f=$(damaged head2); mut break-header-sig "$f" 2; still_reads "$f"
}
case_both_region_tables () {
  local f; f=$(damaged regis); mut break-region-sig "$f" 1; mut break-region-sig "$f" 2; refused "$f"
}
# One region table copy damaged: MS-VHDX leaves the reader's choice (use
# the other copy, or refuse); either way cleanly, and never a wrong read.
case_region_table1_only () {
  local f; f=$(damaged regi1); mut break-region-sig "$f" 1
  survives "$f"
  if "$VHDKIT" read "$f" >"$T/r.out" 2>/dev/null; then
    same "read with region table 1 damaged" "$(file_sha "$T/r.out")" "$(file_sha "$T/base.raw")"
  fi
}

run_cases case_file_identifier case_both_headers case_header1_only case_header2_only \
  case_both_region_tables case_region_table1_only
