#!/usr/bin/env bash
# Truncated VHDX files: empty, inside the file identifier, at the first
# header, inside the region tables, at 1 MiB, in the middle of the log, the
# BAT and the metadata region, and inside the last payload block.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/badinput-lib.sh"

make_base
bat=$("$PY" "$MUT" get "$T/base.vhdx" bat.offset)
meta=$("$PY" "$MUT" get "$T/base.vhdx" metadata.offset)
logoff=$("$PY" "$MUT" get "$T/base.vhdx" current.log_offset)
loglen=$("$PY" "$MUT" get "$T/base.vhdx" current.log_length)
fsize=$(stat -c %s "$T/base.vhdx")
info "layout: log $logoff+$loglen, BAT $bat, metadata $meta, file $fsize"

cut () { local f; f=$(damaged "cut-$1") && truncate -s "$2" "$f" || exit 1; printf '%s\n' "$f"; }

case_0 ()        { refused "$(cut 0 0)"; }
case_1000 ()     { refused "$(cut 1000 1000)"; }
case_64K ()      { refused "$(cut 64K 65536)"; }
case_200K ()     { refused "$(cut 200K 204800)"; }
case_1M ()       { refused "$(cut 1M 1048576)"; }
case_mid_log ()  { refused "$(cut mid-log $((logoff + loglen / 2)))"; }
case_mid_bat ()  { refused "$(cut mid-bat $((bat + 64)))"; }
case_mid_meta () { refused "$(cut mid-meta $((meta + 65536 + 12)))"; }
# The last block is cut short: its BAT entry points past the end of file.
# Reading (and checking) must fail; info may not look at the BAT.
case_mid_last_block () {
  local f
  f=$(cut mid-last-block $((fsize - 512*M/1024)))
  refused "$f" "" "read check"
  survives "$f" info
}

run_cases case_0 case_1000 case_64K case_200K case_1M case_mid_log case_mid_bat \
  case_mid_meta case_mid_last_block
