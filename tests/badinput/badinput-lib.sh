# shellcheck shell=bash
# Helpers for the bad-input tests: damaged copies of vhdkit-made images,
# built with vhdxmut.py.  Source it after lib.sh:
#   . "$(dirname "$0")/badinput-lib.sh"
#
# A damaged image must be refused cleanly by every verb: exit status 1 (not
# a signal, not a hang), a sentence on stderr in the CLI's format that names
# the file, and the file left exactly as it was.

. "$TOP/tests/interop/peer-lib.sh"
need_vhdkit
M=1048576

# make_base [SIZE [BLOCK [TYPE]]]: $T/base.vhdx with data in blocks 0, 3
# and the last one, and its expected content $T/base.raw.
make_base () {
  local size=${1:-$((16*M))} bs=${2:-1M} type=${3:-dynamic}
  vk create "$T/base.vhdx" --size "$size" --type "$type" --block-size "$bs"
  mk_expect "$T/base.raw" "$size"
  rand_write "$T/base.vhdx" "$T/base.raw" 0 $((M + 4096))
  rand_write "$T/base.vhdx" "$T/base.raw" $((3*M + 512)) 8192
  rand_write "$T/base.vhdx" "$T/base.raw" $((size - M)) "$M"
  local lg
  lg=$("$PY" "$MUT" get "$T/base.vhdx" current.log_guid)
  [ "$lg" = 00000000-0000-0000-0000-000000000000 ] ||
    fail "vhdkit left an active log (LogGuid $lg) in a cleanly closed image: cannot build damaged copies"
}

# damaged NAME: a fresh writable copy of the base image, $T/NAME.vhdx.
damaged () {
  local f=$T/$1.vhdx
  rm -f "$f"
  cp "$T/base.vhdx" "$f" || fail "cannot copy the base image"
  printf '%s\n' "$f"
}

mut () { "$PY" "$MUT" "$@" || fail "vhdxmut $* failed"; }

# run_verb VERB FILE: run "vhdkit VERB FILE" under a timeout; status in
# $verb_rc, stdout in $T/out, stderr in $T/err.
verb_rc=0
run_verb () {
  verb_rc=0
  timeout 60 "$VHDKIT" "$1" "$2" >"$T/out" 2>"$T/err" || verb_rc=$?
}

# refused FILE [CODE [VERBS]]: every verb (default: info read check) fails
# cleanly — exit 1, the CLI's error line naming the file (for check, the
# file named anywhere in its output), CODE if given — and the file is
# unchanged.  With NAME set in the environment, the message must name NAME
# instead of FILE's basename (e.g. the missing parent).
refused () {
  local f=$1 code=${2:-} verbs=${3:-info read check} name before verb msg
  name=${NAME:-$(basename "$f")}
  before=$(file_sha "$f")
  for verb in $verbs; do
    run_verb "$verb" "$f"
    msg="$(cat "$T/err")"
    [ "$verb_rc" -ne 0 ] || fail "'vhdkit $verb $(basename "$f")' succeeded on a damaged file"
    [ "$verb_rc" -ne 124 ] || fail "'vhdkit $verb $(basename "$f")' hung (killed after 60 s)"
    [ "$verb_rc" -lt 128 ] || fail "'vhdkit $verb $(basename "$f")' CRASHED (exit $verb_rc = signal $((verb_rc - 128))): $msg"
    [ "$verb_rc" -eq 1 ] || fail "'vhdkit $verb $(basename "$f")' exited $verb_rc, expected 1: $msg"
    if [ "$verb" = check ]; then
      cat "$T/out" "$T/err" | grep -qF "$name" ||
        fail "'vhdkit check $(basename "$f")' does not name $name: $(cat "$T/out") $msg"
    else
      grep -q "^vhdkit: $verb: .*([0-9][0-9]*): ." "$T/err" ||
        fail "'vhdkit $verb $(basename "$f")': no 'vhdkit: $verb: <name> (<code>): <sentence>' line on stderr: '$msg'"
      grep -qF "$name" "$T/err" ||
        fail "'vhdkit $verb $(basename "$f")': the error does not name $name: $msg"
      if [ -n "$code" ]; then
        grep -q "($code)" "$T/err" ||
          fail "'vhdkit $verb $(basename "$f")': expected code ($code), got: $msg"
      fi
    fi
    info "$verb $(basename "$f"): $( { [ "$verb" = read ] || cat "$T/out"; cat "$T/err"; } | head -n1)"
  done
  [ "$(file_sha "$f")" = "$before" ] || fail "vhdkit MODIFIED the damaged file $(basename "$f") while refusing it"
}

# survives FILE VERBS: the verbs may succeed or fail, but cleanly (exit 0 or
# 1, no crash, no hang), and the file is unchanged.
survives () {
  local f=$1 verbs=${2:-info read check} before verb
  before=$(file_sha "$f")
  for verb in $verbs; do
    run_verb "$verb" "$f"
    [ "$verb_rc" -ne 124 ] || fail "'vhdkit $verb $(basename "$f")' hung (killed after 60 s)"
    [ "$verb_rc" -le 1 ] || fail "'vhdkit $verb $(basename "$f")' exited $verb_rc (crash or bad status): $(cat "$T/err")"
    info "$verb $(basename "$f"): exit $verb_rc $( { [ "$verb" = read ] || cat "$T/out"; cat "$T/err"; } | head -n1)"
  done
  [ "$(file_sha "$f")" = "$before" ] || fail "vhdkit MODIFIED $(basename "$f") while reading it"
}

# still_reads FILE [EXPECT]: the image opens and reads its original content
# (damage it must tolerate), and is not modified by reading.
still_reads () {
  local f=$1 exp=${2:-$T/base.raw} before got rc=0
  before=$(file_sha "$f")
  "$VHDKIT" info "$f" >"$T/out" 2>"$T/err" || rc=$?
  [ "$rc" -eq 0 ] || fail "'vhdkit info $(basename "$f")' exited $rc on a tolerable damage: $(cat "$T/err")"
  got=$(vk_sha "$f")
  same "vhdkit read $(basename "$f")" "$got" "$(file_sha "$exp")"
  survives "$f" check
  [ "$(file_sha "$f")" = "$before" ] || fail "vhdkit MODIFIED $(basename "$f") while reading it"
}

# run_cases CASE...: run each case function (in a subshell, see try) and
# fail at the end naming every case that failed.
run_cases () {
  local c failed=()
  for c in "$@"; do
    info "--- case $c"
    try "$c"
    [ "$try_rc" -eq 0 ] || failed+=("$c")
  done
  [ ${#failed[@]} -eq 0 ] || fail "failed cases: ${failed[*]}"
}
