#!/usr/bin/env bash
# BAT entries that point where no block can be: past the end of the file,
# so far that offset + block size overflows, into the headers, into the
# metadata region; a reserved block state; PARTIALLY_PRESENT without parent.  Reading and checking must
# fail cleanly; "info" need not read the BAT, but must not crash.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/badinput-lib.sh"

make_base
fsize=$(stat -c %s "$T/base.vhdx")
meta=$("$PY" "$MUT" get "$T/base.vhdx" metadata.offset)
# Block 3 holds data, block 5 is unallocated.
[ "$("$PY" "$MUT" get "$T/base.vhdx" blocks.3.state)" = FULLY_PRESENT ] ||
  fail "test premise: block 3 of the base image should be FULLY_PRESENT"

bat_case () {  # NAME BLOCK STATE OFFSET_MB
  local f; f=$(damaged "$1"); mut set-bat "$f" "$2" "$3" "$4"
  refused "$f" "" "read check"
  survives "$f" info
}
case_at_eof ()          { bat_case at-eof 3 FULLY_PRESENT $((fsize / M)); }
case_far_past_eof ()    { bat_case far 5 FULLY_PRESENT $((fsize / M + 1000)); }
case_offset_overflow () { bat_case ovf 5 FULLY_PRESENT 0xfffffffffff; }
case_into_headers ()    { bat_case head 3 FULLY_PRESENT 0; }
case_into_metadata ()   { bat_case meta 5 FULLY_PRESENT $((meta / M)); }
case_state_4 ()         { bat_case st4 3 4 $(( $("$PY" "$MUT" get "$T/base.vhdx" blocks.3.offset) / M )); }
# (State 5 is not tested as invalid: pre-1.0 writers used it for UNMAPPED,
# and readers such as qemu accept it.)
case_partial_in_dynamic () {
  # PARTIALLY_PRESENT is only valid in a differencing image (MS-VHDX 2.5.1.1).
  bat_case partial 3 PARTIALLY_PRESENT $(( $("$PY" "$MUT" get "$T/base.vhdx" blocks.3.offset) / M ))
}

run_cases case_at_eof case_far_past_eof case_offset_overflow case_into_headers \
  case_into_metadata case_state_4 case_partial_in_dynamic
