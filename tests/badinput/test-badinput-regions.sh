#!/usr/bin/env bash
# Region tables that are well-formed (valid checksums) but describe an
# impossible file: regions overlapping each other or the headers or the log,
# regions beyond the end of the file, an unknown region marked required
# (Not Supported, 32770) — and, as a control, an unknown optional region,
# which must be ignored.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/badinput-lib.sh"

make_base
bat=$("$PY" "$MUT" get "$T/base.vhdx" bat.offset)
batlen=$("$PY" "$MUT" get "$T/base.vhdx" bat.length)
meta=$("$PY" "$MUT" get "$T/base.vhdx" metadata.offset)
metalen=$("$PY" "$MUT" get "$T/base.vhdx" metadata.length)
logoff=$("$PY" "$MUT" get "$T/base.vhdx" current.log_offset)
fsize=$(stat -c %s "$T/base.vhdx")
past=$(( (fsize / M + 16) * M ))   # 1 MiB-aligned, well past the end
unknown=6f2a1b3c-0d4e-4f5a-8b6c-7d8e9fa0b1c2

case_bat_over_metadata () {
  local f; f=$(damaged bat-meta); mut set-region "$f" bat "$meta" "$batlen"; refused "$f"
}
case_metadata_over_bat () {
  local f; f=$(damaged meta-bat); mut set-region "$f" metadata "$bat" "$metalen"; refused "$f"
}
case_bat_over_headers () {
  local f; f=$(damaged bat-head); mut set-region "$f" bat 0 "$batlen"; refused "$f"
}
case_bat_over_log () {
  local f; f=$(damaged bat-log); mut set-region "$f" bat "$logoff" "$batlen"; refused "$f"
}
case_bat_past_eof () {
  local f; f=$(damaged bat-eof); mut set-region "$f" bat "$past" "$batlen"; refused "$f"
}
case_metadata_past_eof () {
  local f; f=$(damaged meta-eof); mut set-region "$f" metadata "$past" "$metalen"; refused "$f"
}
case_bat_huge_length () {
  local f; f=$(damaged bat-len); mut set-region "$f" bat "$bat" 0xfff00000; refused "$f"
}
case_bat_offset_overflow () {
  local f; f=$(damaged bat-ovf); mut set-region "$f" bat 0xfffffffffff00000 "$batlen"; refused "$f"
}
case_bat_too_small () {
  # 16 blocks need 16 entries; a zero-length BAT region cannot hold them.
  local f; f=$(damaged bat-small); mut set-region "$f" bat "$bat" 0; refused "$f"
}
case_unknown_required_region () {
  local f; f=$(damaged unk-req); mut add-region "$f" "$unknown" "$past" 1M 1; refused "$f" 32770
}
case_unknown_optional_region () {
  local f; f=$(damaged unk-opt); mut add-region "$f" "$unknown" "$past" 1M 0; still_reads "$f"
}

run_cases case_bat_over_metadata case_metadata_over_bat case_bat_over_headers \
  case_bat_over_log case_bat_past_eof case_metadata_past_eof case_bat_huge_length \
  case_bat_offset_overflow case_bat_too_small case_unknown_required_region \
  case_unknown_optional_region
