#!/usr/bin/env bash
# Damaged VHD Sets (docs/FORMAT-vhds.md): a valid set (base + 2 snapshots +
# leaf, with data written before and after each snapshot) is copied into a
# folder per case and damaged with vhdsmut.py.  Then every command that
# reads a set — set info, set snapshots, read (leaf and snapshot), changes
# — must either refuse it cleanly (exit 1, not a signal, not a hang, no
# sanitizer report, exactly one line "vhdkit: VERB: NAME (CODE): SENTENCE"
# on stderr naming the file, the expected code) or, where the damage hits
# only one of the two copies (VS-1), open the other copy and answer exactly
# as for the intact set.  In every case each file of the set's folder is
# left byte-identical (read-only commands never write, VS-1, VS-5).
#
# Expected codes: structural damage in the .vhds 32768 with "damaged" (or
# the specific cause) in the sentence; a missing member 32779; a member
# that resolves outside the folder 32769 (VS-2).
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/badinput/badinput-lib.sh"    # vk, rand_write, run_cases, try

VMUT=$TOP/tests/set/vhdsmut.py
vmut () { "$PY" "$VMUT" "$@" || fail "vhdsmut $* failed"; }
vget () { "$PY" "$VMUT" get "$@" || fail "vhdsmut get $* failed"; }

"$VHDKIT" set --help >/dev/null 2>&1 ||
  fail "'vhdkit set --help' fails: this vhdkit has no VHD Set support"

# ---- the intact set ------------------------------------------------------

SIZE=$((64*M))
TPL=$T/tpl
mkdir -p "$TPL"
vk create "$TPL/base.vhdx" --size 64M
mk_expect "$T/v0.raw" "$SIZE"
rand_write "$TPL/base.vhdx" "$T/v0.raw" 0 $((M + 4096))
rand_write "$TPL/base.vhdx" "$T/v0.raw" $((40*M)) $((2*M))
vk set convert "$TPL/base.vhdx"
[ -f "$TPL/base.vhds" ] || fail "'vhdkit set convert base.vhdx' made no base.vhds: $(ls "$TPL")"

# snapshot: take one, print its ID (the last GUID-like word on stdout).
snapshot () {
  local out=$T/snap.out rc=0
  "$VHDKIT" set snapshot "$TPL/base.vhds" >"$out" 2>"$T/snap.err" || rc=$?
  [ "$rc" -eq 0 ] || fail "'vhdkit set snapshot base.vhds' exited $rc: $(cat "$T/snap.err")"
  grep -oiE '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' "$out" | tail -n1 |
    grep . || fail "'vhdkit set snapshot' printed no snapshot ID: $(cat "$out")"
}

ID1=$(snapshot)
cp "$T/v0.raw" "$T/snap1.raw"
rand_write "$TPL/base.vhds" "$T/v0.raw" $((512*1024)) $((1536*1024))
rand_write "$TPL/base.vhds" "$T/v0.raw" $((20*M)) 65536
ID2=$(snapshot)
cp "$T/v0.raw" "$T/snap2.raw"
rand_write "$TPL/base.vhds" "$T/v0.raw" $((3*M)) 8192
rand_write "$TPL/base.vhds" "$T/v0.raw" $((SIZE - M)) "$M"
mv "$T/v0.raw" "$T/leaf.raw"
info "snapshots $ID1 $ID2; folder: $(ls "$TPL" | tr '\n' ' ')"

# The premises: vhdsmut reads the set as the library wrote it (both copies
# valid and identical, 3 members, 2 records), and the intact set answers.
S0=$TPL/base.vhds
[ "$(vget "$S0" A.valid)" = true ] || fail "vhdsmut: copy A of a fresh set is not valid: $(vget "$S0" A.problems)"
[ "$(vget "$S0" B.valid)" = true ] || fail "vhdsmut: copy B of a fresh set is not valid: $(vget "$S0" B.problems)"
LEN=$(vget "$S0" A.length)
cmp -s <(head -c "$LEN" "$S0") <(tail -c +$((M + 1)) "$S0" | head -c "$LEN") ||
  fail "copies A and B of a fresh set differ (VS-1 says both are identical)"
[ "$(vget "$S0" A.n_members)" = 3 ] || fail "expected 3 members, the set has $(vget "$S0" A.n_members)"
[ "$(vget "$S0" A.n_records)" = 2 ] || fail "expected 2 records, the set has $(vget "$S0" A.n_records)"
SEQ=$(vget "$S0" A.seq)
LEAF=$(vget "$S0" A.leaf)
BASE="" MID=""
for i in 0 1 2; do
  if [ "$(vget "$S0" "A.members.$i.parent")" = 4294967295 ]; then BASE=$i
  elif [ "$i" != "$LEAF" ]; then MID=$i; fi
done
[ -n "$BASE" ] && [ -n "$MID" ] || fail "cannot tell base, middle and leaf apart: $("$PY" "$VMUT" dump "$S0")"
[ "$(vget "$S0" "A.members.$MID.parent")" = "$BASE" ] &&
  [ "$(vget "$S0" "A.members.$LEAF.parent")" = "$MID" ] ||
  fail "the set is not the chain base <- middle <- leaf: $("$PY" "$VMUT" dump "$S0")"
BASE_NAME=$(vget "$S0" "A.members.$BASE.name")
MID_NAME=$(vget "$S0" "A.members.$MID.name")
LEAF_NAME=$(vget "$S0" "A.members.$LEAF.name")
info "members: base #$BASE $BASE_NAME, middle #$MID $MID_NAME, leaf #$LEAF $LEAF_NAME; seq $SEQ"
[ "$BASE_NAME" = base.vhdx ] || fail "the base member is $BASE_NAME, expected base.vhdx"
[ -f "$TPL/$MID_NAME" ] && [ -f "$TPL/$LEAF_NAME" ] || fail "member files missing in $(ls "$TPL")"
# Records: the one of ID1 names the base, the one of ID2 the middle member.
for j in 0 1; do
  id=$(vget "$S0" "A.records.$j.id")
  m=$(vget "$S0" "A.records.$j.member")
  if [ "${id,,}" = "${ID1,,}" ]; then [ "$m" = "$BASE" ] || fail "record of $ID1 names member $m, not the base"
  elif [ "${id,,}" = "${ID2,,}" ]; then [ "$m" = "$MID" ] || fail "record of $ID2 names member $m, not the middle"
  else fail "record $j has ID $id, neither $ID1 nor $ID2"; fi
done

# ---- the commands ---------------------------------------------------------

# The verbs of a case, as words: info snapshots read snapread changes.
ALL_VERBS="info snapshots read snapread changes"

# run_set VERB SET: run the command VERB stands for under a timeout; status
# in $verb_rc, stdout in $T/out, stderr in $T/err; $verb_name is the VERB
# the CLI names in its messages.
run_set () {
  local s=$1 set=$2
  local -a cmd
  case $s in
    info)      cmd=(set info "$set");       verb_name="set info" ;;
    snapshots) cmd=(set snapshots "$set" --parents); verb_name="set snapshots" ;;
    read)      cmd=(read "$set");           verb_name="read" ;;
    snapread)  cmd=(read "$set@$ID2");      verb_name="read" ;;
    changes)   cmd=(changes "$set" --limit-id "$ID1"); verb_name=changes ;;
    *) fail "run_set: unknown verb $s" ;;
  esac
  verb_cmd="vhdkit ${cmd[*]}"
  verb_rc=0
  timeout 60 "$VHDKIT" "${cmd[@]}" >"$T/out" 2>"$T/err" || verb_rc=$?
}

# No crash, no hang, no sanitizer report: common to every outcome.
clean_exit () {
  [ "$verb_rc" -ne 124 ] || fail "'$verb_cmd' HUNG (killed after 60 s)"
  [ "$verb_rc" -lt 128 ] || fail "'$verb_cmd' CRASHED (exit $verb_rc = signal $((verb_rc - 128))): $(cat "$T/err")"
  if grep -qE 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$T/err"; then
    fail "'$verb_cmd': sanitizer report: $(cat "$T/err")"
  fi
}

# The state of a folder: every name, its type, symlink target and content.
tree_state () {
  ( cd "$1" && find . -printf '%p %y %l %s\n' | LC_ALL=C sort &&
      find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum )
}

# fresh NAME: a copy of the intact set in $T/NAME; prints the .vhds path.
fresh () {
  local d=$T/$1
  rm -rf "$d"
  cp -a "$TPL" "$d" || fail "cannot copy the set"
  printf '%s\n' "$d/base.vhds"
}

# refused SET CODE WHAT [VERBS]: every verb fails cleanly — exit 1, exactly
# one stderr line "vhdkit: VERB: NAME (CODE): SENTENCE", the code CODE (any
# code if empty), the sentence matching the extended regex WHAT
# (case-insensitive; empty: anything) — and the folder is unchanged.  The
# sentence must name the set's file, or $NAME when set (a member file).
refused () {
  local set=$1 code=$2 what=$3 verbs=${4:-$ALL_VERBS} name before v msg
  local dir; dir=$(dirname "$set")
  name=${NAME:-$(basename "$set")}
  before=$(tree_state "$dir")
  for v in $verbs; do
    run_set "$v" "$set"
    clean_exit
    msg=$(cat "$T/err")
    [ "$verb_rc" -ne 0 ] || fail "'$verb_cmd' SUCCEEDED on a damaged set (stdout: $(head -c 300 "$T/out"))"
    [ "$verb_rc" -eq 1 ] || fail "'$verb_cmd' exited $verb_rc, expected 1: $msg"
    [ "$(wc -l <"$T/err")" -eq 1 ] || fail "'$verb_cmd': expected exactly one line on stderr, got: $msg"
    grep -qE "^vhdkit: $verb_name: [A-Za-z][^()]* \([0-9]+\): ." "$T/err" ||
      fail "'$verb_cmd': no 'vhdkit: $verb_name: <name> (<code>): <sentence>' line on stderr: '$msg'"
    if [ -n "$code" ]; then
      grep -q "($code): " "$T/err" || fail "'$verb_cmd': expected code ($code), got: $msg"
    fi
    grep -qF -- "$name" "$T/err" || fail "'$verb_cmd': the error does not name $name: $msg"
    if [ -n "$what" ]; then
      sed 's/^[^)]*): //' "$T/err" | grep -qiE -- "$what" ||
        fail "'$verb_cmd': the sentence does not say /$what/: $msg"
    fi
    info "$v: $msg"
  done
  [ "$(tree_state "$dir")" = "$before" ] || fail "vhdkit MODIFIED the set's folder while refusing it: $(diff <(echo "$before") <(tree_state "$dir"))"
}

# Structural damage of the .vhds in both copies: 32768, "damaged" or CAUSE.
damaged () { refused "$1" 32768 "damaged${2:+|$2}"; }

# baseline SET: the answers of the intact copy of the set, before damage.
baseline () {
  local set=$1 v
  for v in info snapshots changes; do
    run_set "$v" "$set"
    [ "$verb_rc" -eq 0 ] || fail "premise: '$verb_cmd' on the intact set exited $verb_rc: $(cat "$T/err")"
    cp "$T/out" "$T/base-$v.out"
  done
}

# tolerated SET: (baseline taken before the damage) every verb succeeds,
# prints nothing on stderr, and answers as for the intact set; the reads
# give the expected contents; the folder is unchanged.
tolerated () {
  local set=$1 dir before v
  dir=$(dirname "$set")
  before=$(tree_state "$dir")
  for v in $ALL_VERBS; do
    run_set "$v" "$set"
    clean_exit
    [ "$verb_rc" -eq 0 ] || fail "'$verb_cmd' exited $verb_rc on damage it must survive (the other copy is intact): $(cat "$T/err")"
    [ ! -s "$T/err" ] || fail "'$verb_cmd' printed on stderr: $(cat "$T/err")"
    case $v in
      read)     same "$verb_cmd" "$(file_sha "$T/out")" "$(file_sha "$T/leaf.raw")" ;;
      snapread) same "$verb_cmd" "$(file_sha "$T/out")" "$(file_sha "$T/snap2.raw")" ;;
      *) cmp -s "$T/out" "$T/base-$v.out" ||
           fail "'$verb_cmd' answers differently than for the intact set: $(diff "$T/base-$v.out" "$T/out" | head -n 20)" ;;
    esac
  done
  [ "$(tree_state "$dir")" = "$before" ] || fail "vhdkit MODIFIED the set's folder while reading it"
  info "tolerated: $(basename "$dir")"
}

# survives SET [VERBS]: exit 0 or 1, cleanly (one error line if 1), and the
# folder unchanged; used where the outcome is not the point.
survives_set () {
  local set=$1 verbs=${2:-$ALL_VERBS} dir before v
  dir=$(dirname "$set")
  before=$(tree_state "$dir")
  for v in $verbs; do
    run_set "$v" "$set"
    clean_exit
    [ "$verb_rc" -le 1 ] || fail "'$verb_cmd' exited $verb_rc: $(cat "$T/err")"
    if [ "$verb_rc" -eq 1 ]; then
      [ "$(wc -l <"$T/err")" -eq 1 ] && grep -qE "^vhdkit: $verb_name: [A-Za-z][^()]* \([0-9]+\): ." "$T/err" ||
        fail "'$verb_cmd': not exactly one error line on stderr: $(cat "$T/err")"
    fi
    info "$v: exit $verb_rc $(head -n1 "$T/err")"
  done
  [ "$(tree_state "$dir")" = "$before" ] || fail "vhdkit MODIFIED the set's folder: $(diff <(echo "$before") <(tree_state "$dir"))"
}

# premise_invalid SET COPY: vhdsmut agrees that the copy is invalid (so the
# case damages what it means to).
premise_invalid () {
  [ "$(vget "$1" "$2.valid")" = false ] || fail "premise: vhdsmut finds copy $2 still valid"
}

# ---- the cases --------------------------------------------------------------

# Truncated: both copies gone (the file is shorter than copy B's start).
case_trunc_0 ()   { local s; s=$(fresh t0);   vmut truncate "$s" 0;   damaged "$s"; }
case_trunc_100 () { local s; s=$(fresh t100); vmut truncate "$s" 100; damaged "$s"; }
case_trunc_127 () { local s; s=$(fresh t127); vmut truncate "$s" 127; damaged "$s"; }
case_trunc_mid_member () {
  local s; s=$(fresh tmm); vmut truncate "$s" $((128 + 288 + 100)); damaged "$s"
}
case_trunc_mid_records () {
  local s; s=$(fresh tmr); vmut truncate "$s" $((LEN - 10)); damaged "$s"
}
# Copy A intact, copy B cut or gone: A is used.
case_trunc_after_A () {
  local s; s=$(fresh tA); baseline "$s"; vmut truncate "$s" "$LEN"; tolerated "$s"
}
case_trunc_1M () {
  local s; s=$(fresh t1M); baseline "$s"; vmut truncate "$s" 1M; tolerated "$s"
}
case_trunc_mid_B () {
  local s; s=$(fresh tmB); baseline "$s"; vmut truncate "$s" "1M+$((128 + 288 + 100))"
  premise_invalid "$s" B; tolerated "$s"
}

# One copy damaged: the other opens, with the same answers.
one_copy () {   # one_copy NAME COPY vhdsmut-args...
  local n=$1 c=$2 s; shift 2
  s=$(fresh "$n"); baseline "$s"
  vmut "$1" "$s" "${@:2}"
  premise_invalid "$s" "$c"
  tolerated "$s"
}
case_A_magic ()   { one_copy am A set A magic VHDKSETX; }
case_B_magic ()   { one_copy bm B set B magic VHDKSETX; }
case_A_version () { one_copy av A set A version 2; }
case_B_version () { one_copy bv B set B version 0; }
case_A_crc ()     { one_copy ac A break-crc A; }
case_B_crc ()     { one_copy bc B break-crc B; }
case_A_leaf ()    { one_copy al A set A leaf 7; }
case_B_loop ()    { one_copy bl B set B "member.$MID.parent" "$LEAF" "member.$LEAF.parent" "$MID"; }
case_A_name ()    { one_copy an A set A "member.$MID.name" ../x.avhdx; }
case_A_length ()  { one_copy aL A set A length $((LEN + 64)); }
# A corrupt copy with a higher sequence number is not current.
case_B_higher_seq_bad_crc () {
  one_copy bsc B set B seq $((SEQ + 1)) --keep-crc
}
case_B_higher_seq_bad_leaf () {
  one_copy bsl B set B seq $((SEQ + 5)) leaf 3
}
case_A_higher_seq_bad_magic () {
  one_copy asm A set A seq $((SEQ + 1)) magic VHDKSET2
}
case_A_higher_seq_dup_ids () {
  local s; s=$(fresh asd); baseline "$s"
  vmut set "$s" A seq $((SEQ + 1)) record.1.id "$(vget "$s" A.records.0.id)"
  premise_invalid "$s" A; tolerated "$s"
}

# Both copies damaged: "damaged".
case_both_magic ()   { local s; s=$(fresh 2m); vmut set "$s" both magic VHDKSETX; damaged "$s" magic; }
case_both_version () { local s; s=$(fresh 2v); vmut set "$s" both version 2; damaged "$s" version; }
case_both_crc ()     { local s; s=$(fresh 2c); vmut break-crc "$s" both; damaged "$s" "crc|checksum"; }
case_both_crc_different_seq () {
  local s; s=$(fresh 2cs); vmut set "$s" B seq $((SEQ + 1)); vmut break-crc "$s" both; damaged "$s" "crc|checksum"
}
case_length_small () { local s; s=$(fresh ls); vmut set "$s" both length 127; damaged "$s" length; }
case_length_big ()   { local s; s=$(fresh lb); vmut set "$s" both length 2M; damaged "$s" length; }

# Counts.
case_members_0 ()    { local s; s=$(fresh m0);    vmut set "$s" both members 0;    damaged "$s" member; }
case_members_2000 () { local s; s=$(fresh m2000); vmut set "$s" both members 2000; damaged "$s" member; }
case_members_beyond_length () {
  local s; s=$(fresh mbl); vmut set "$s" both members 4; damaged "$s" "member|length"
}
case_members_fewer () {   # 2 members: the records then start inside member 2
  local s; s=$(fresh mf); vmut set "$s" both members 2; damaged "$s" "member|length"
}
case_members_2000_length () {   # the count over the limit, the length agreeing
  local s; s=$(fresh m2l); vmut set "$s" both members 2000 length $((128 + 288*2000 + 64*2))
  damaged "$s" "member|length"
}
case_records_5000 () { local s; s=$(fresh r5000); vmut set "$s" both records 5000; damaged "$s" "record|length"; }
case_records_beyond_length () {
  local s; s=$(fresh rbl); vmut set "$s" both records 3; damaged "$s" "record|length"
}

# The tree.
case_leaf_out_of_range () { local s; s=$(fresh lo); vmut set "$s" both leaf 3; damaged "$s" leaf; }
case_leaf_none ()          { local s; s=$(fresh ln); vmut set "$s" both leaf none; damaged "$s" leaf; }
case_parent_out_of_range () {
  local s; s=$(fresh po); vmut set "$s" both "member.$LEAF.parent" 3; damaged "$s" parent
}
case_parent_huge () {
  local s; s=$(fresh ph); vmut set "$s" both "member.$MID.parent" 0xfffffffe; damaged "$s" parent
}
case_parent_self () {
  local s; s=$(fresh ps); vmut set "$s" both "member.$MID.parent" "$MID"; damaged "$s" "parent|loop"
}
case_parent_loop () {   # middle and leaf each other's parent; the base alone is a root
  local s; s=$(fresh pl)
  vmut set "$s" both "member.$MID.parent" "$LEAF" "member.$LEAF.parent" "$MID"
  premise_invalid "$s" A; damaged "$s" "loop|cycle|parent"
}
case_no_root () {       # all three in a loop
  local s; s=$(fresh nr)
  vmut set "$s" both "member.$BASE.parent" "$LEAF"
  damaged "$s" "loop|cycle|parent|base|root"
}
case_two_roots () {
  local s; s=$(fresh 2r); vmut set "$s" both "member.$MID.parent" none; damaged "$s" "base|root|parent"
}

# Member names.
bad_name () {   # bad_name CASE NAME-VALUE CAUSE
  local s; s=$(fresh "$1"); vmut set "$s" both "member.$MID.name" "$2"; premise_invalid "$s" A
  damaged "$s" "name${3:+|$3}"
}
case_name_slash ()     { bad_name nsl "sub/$MID_NAME"; }
case_name_abs ()       { bad_name nab "/etc/passwd"; }
case_name_dotdot ()    { bad_name ndd ".."; }
case_name_dotdot_path () { bad_name ndp "../tpl/$MID_NAME"; }
case_name_dot ()       { bad_name ndt "."; }
case_name_empty ()     { bad_name nem ""; }
case_name_unterminated () { bad_name nun "hex:$(printf 'a%.0s' $(seq 256) | od -An -v -tx1 | tr -d ' \n')"; }
case_name_duplicate () { bad_name ndu "$BASE_NAME" "duplicate|twice|same"; }

# Members' files.
case_member_missing () {
  local s; s=$(fresh mm); rm "$(dirname "$s")/$MID_NAME"
  NAME=$MID_NAME refused "$s" 32779 "" "read snapread changes"
  # set info and set snapshots need not open the members; if they do, the
  # same code.  (Hyper-V's Get-VHDSet lists the paths it is given.)
  NAME=$MID_NAME survives_set "$s" "info snapshots"
  for v in info snapshots; do
    run_set "$v" "$s"
    if [ "$verb_rc" -ne 0 ]; then grep -q '(32779)' "$T/err" || fail "'$verb_cmd': expected 32779: $(cat "$T/err")"; fi
  done
}
case_base_missing () {
  local s; s=$(fresh bmi); rm "$(dirname "$s")/$BASE_NAME"
  NAME=$BASE_NAME refused "$s" 32779 "" "read snapread changes"
  survives_set "$s" "info snapshots"
}
case_set_missing () {
  local s; s=$(fresh smi); rm "$s"
  refused "$s" 32779 ""
}
case_member_symlink_outside () {
  local s d; s=$(fresh mso); d=$(dirname "$s")
  mkdir -p "$T/outside"
  mv "$d/$MID_NAME" "$T/outside/$MID_NAME"
  ln -s "$T/outside/$MID_NAME" "$d/$MID_NAME"
  NAME=$MID_NAME refused "$s" 32769 "" "read snapread changes"
  survives_set "$s" "info snapshots"
  for v in info snapshots; do
    run_set "$v" "$s"
    if [ "$verb_rc" -ne 0 ]; then grep -q '(32769)' "$T/err" || fail "'$verb_cmd': expected 32769: $(cat "$T/err")"; fi
  done
}
case_member_symlink_relative_outside () {
  local s d; s=$(fresh msr); d=$(dirname "$s")
  mkdir -p "$T/outside2"
  mv "$d/$BASE_NAME" "$T/outside2/$BASE_NAME"
  ln -s "../outside2/$BASE_NAME" "$d/$BASE_NAME"
  NAME=$BASE_NAME refused "$s" 32769 "" "read snapread changes"
  survives_set "$s" "info snapshots"
}
case_member_symlink_inside () {   # a link that stays in the folder is no escape
  local s d; s=$(fresh msi); d=$(dirname "$s")
  mv "$d/$MID_NAME" "$d/real-middle.avhdx"
  ln -s "real-middle.avhdx" "$d/$MID_NAME"
  survives_set "$s"
}
case_member_not_vhdx () {
  local s d; s=$(fresh mnv); d=$(dirname "$s")
  printf 'this is not a virtual disk\n' >"$d/$MID_NAME"
  NAME=$MID_NAME refused "$s" "" "" "read snapread changes"
  survives_set "$s" "info snapshots"
}
case_member_directory () {
  # No code required, as for a plain chain whose parent is a directory
  # (tests/badinput/test-badinput-parent-missing.sh); the implementation
  # says 32773 (Invalid parameter, "is a directory").
  local s d; s=$(fresh mdi); d=$(dirname "$s")
  rm "$d/$MID_NAME"; mkdir "$d/$MID_NAME"
  NAME=$MID_NAME refused "$s" "" "" "read snapread changes"
  survives_set "$s" "info snapshots"
}
# The set names the files in a different tree than their parent locators
# (VS-3): the middle and the leaf exchange names in the .vhds, CRCs valid.
# The leaf the set names is then the frozen middle image, whose own
# locator names base.vhdx while the set says its parent is the old leaf.
case_names_swapped () {
  local s; s=$(fresh nsw); vmut swap-names "$s" both "$MID" "$LEAF"
  [ "$(vget "$s" A.valid)" = true ] || fail "premise: the swapped copy is not valid to vhdsmut"
  # "read" and "changes" open the leaf; the snapshot of ID2 now names the
  # old leaf, whose locator names the middle file while the set says base.
  refused "$s" 32768 "" "read snapread changes"
  for v in read snapread changes; do
    run_set "$v" "$s"
    names_two "$T/err"
  done
  survives_set "$s" "info snapshots"
}
# names_two FILE: the sentence names two different files of the set (VS-3:
# the one the set names and the one the image's locator names).
names_two () {
  local n=0 f
  for f in "$BASE_NAME" "$MID_NAME" "$LEAF_NAME"; do
    if grep -qF -- "$f" "$1"; then n=$((n + 1)); fi
  done
  [ "$n" -ge 2 ] || fail "'$verb_cmd': the sentence does not name both files (VS-3): $(cat "$1")"
}
case_base_middle_swapped () {   # the set's base is a differencing image
  local s; s=$(fresh bsw); vmut swap-names "$s" both "$BASE" "$MID"
  refused "$s" 32768 "" "read snapread changes"
  # (the snapshot of ID2 is then base.vhdx, which has no parent locator at
  # all: one file to name.)
  for v in read changes; do
    run_set "$v" "$s"
    names_two "$T/err"
  done
  survives_set "$s" "info snapshots"
}

# Records.
case_record_names_leaf () {
  local s; s=$(fresh rnl); vmut set "$s" both record.1.member "$LEAF"; damaged "$s" "leaf|record"
}
case_records_same_member () {
  local s; s=$(fresh rsm); vmut set "$s" both record.1.member "$(vget "$s" A.records.0.member)"
  damaged "$s" "record|member"
}
case_record_member_out_of_range () {
  local s; s=$(fresh rmo); vmut set "$s" both record.0.member 3; damaged "$s" "record|member"
}
case_duplicate_snapshot_ids () {
  local s; s=$(fresh dup); vmut set "$s" both record.1.id "$(vget "$s" A.records.0.id)"
  damaged "$s" "duplicate|twice|same|snapshot id"
}
case_zero_snapshot_id () {
  local s; s=$(fresh zid); vmut set "$s" both record.0.id 00000000-0000-0000-0000-000000000000
  damaged "$s" "snapshot id|zero|record"
}
case_rct_generation_0 () {
  local s; s=$(fresh g0); vmut set "$s" both record.0.flags 1 record.0.generation 0
  damaged "$s" "generation|rct"
}
case_rct_generation_big () {
  local s; s=$(fresh gbig); vmut set "$s" both record.0.flags 1 record.0.generation 0x7ffffff1
  damaged "$s" "generation|rct"
}
case_rct_epoch_zero () {
  local s; s=$(fresh ez); vmut set "$s" both record.1.flags 1 record.1.epoch 00000000-0000-0000-0000-000000000000
  damaged "$s" "epoch|rct"
}

# Pending operations.
case_pending_child_out_of_range () {
  local s; s=$(fresh pco); vmut set "$s" both pending_op 1 pending_child 9 pending_parent "$BASE"
  damaged "$s" "pending|merge"
}
case_pending_parent_out_of_range () {
  local s; s=$(fresh ppo); vmut set "$s" both pending_op 1 pending_child "$MID" pending_parent 9
  damaged "$s" "pending|merge"
}
case_pending_not_parent () {    # the second is not the parent of the first
  local s; s=$(fresh pnp); vmut set "$s" both pending_op 1 pending_child "$LEAF" pending_parent "$BASE"
  damaged "$s" "pending|merge|parent"
}
case_pending_base () {          # the base has no parent to merge into
  local s; s=$(fresh pba); vmut set "$s" both pending_op 1 pending_child "$BASE" pending_parent none
  damaged "$s" "pending|merge|parent"
}
case_pending_unknown_op () {
  # FORMAT-vhds.md defines operations 0 and 1 only; an unknown one cannot
  # be finished, so the set cannot be trusted.
  local s; s=$(fresh puo); vmut set "$s" both pending_op 7
  damaged "$s" "pending|operation"
}
case_pending_valid_merge () {
  # A well-formed pending merge (middle into base): the read-only commands
  # may answer or refuse, but never finish the merge (no file changes).
  local s; s=$(fresh pvm); vmut set "$s" both pending_op 1 pending_child "$MID" pending_parent "$BASE"
  [ "$(vget "$s" A.valid)" = true ] || fail "premise: vhdsmut finds the pending merge invalid"
  survives_set "$s"
}

# A pending merge whose rename happened (VS-6: the parent's file is gone,
# renamed over the child's name), faked without the merge itself: the
# readers' view must give a clean answer or a clean error, and no file
# may change (finishing the merge is for an operation, not a reader).
case_pending_merge_parent_gone () {
  local s; s=$(fresh pmg); vmut set "$s" both pending_op 1 pending_child "$MID" pending_parent "$BASE"
  rm "$(dirname "$s")/$BASE_NAME"
  survives_set "$s"
}
case_pending_merge_renamed () {
  local s d; s=$(fresh pmr); d=$(dirname "$s")
  vmut set "$s" both pending_op 1 pending_child "$MID" pending_parent "$BASE"
  mv "$d/$BASE_NAME" "$d/$MID_NAME"
  survives_set "$s"
}

cases=(
  case_trunc_0 case_trunc_100 case_trunc_127 case_trunc_mid_member case_trunc_mid_records
  case_trunc_after_A case_trunc_1M case_trunc_mid_B
  case_A_magic case_B_magic case_A_version case_B_version case_A_crc case_B_crc
  case_A_leaf case_B_loop case_A_name case_A_length
  case_B_higher_seq_bad_crc case_B_higher_seq_bad_leaf case_A_higher_seq_bad_magic
  case_A_higher_seq_dup_ids
  case_both_magic case_both_version case_both_crc case_both_crc_different_seq
  case_length_small case_length_big
  case_members_0 case_members_2000 case_members_beyond_length case_members_fewer
  case_members_2000_length case_records_5000 case_records_beyond_length
  case_leaf_out_of_range case_leaf_none case_parent_out_of_range case_parent_huge
  case_parent_self case_parent_loop case_no_root case_two_roots
  case_name_slash case_name_abs case_name_dotdot case_name_dotdot_path case_name_dot
  case_name_empty case_name_unterminated case_name_duplicate
  case_member_missing case_base_missing case_set_missing case_member_symlink_outside
  case_member_symlink_relative_outside case_member_symlink_inside case_member_not_vhdx
  case_member_directory case_names_swapped case_base_middle_swapped
  case_record_names_leaf case_records_same_member case_record_member_out_of_range
  case_duplicate_snapshot_ids case_zero_snapshot_id case_rct_generation_0
  case_rct_generation_big case_rct_epoch_zero
  case_pending_child_out_of_range case_pending_parent_out_of_range
  case_pending_not_parent case_pending_base case_pending_unknown_op case_pending_valid_merge
  case_pending_merge_parent_gone case_pending_merge_renamed
)
# SET_BADINPUT_CASES="case_a case_b" runs only those (while debugging).
# shellcheck disable=SC2086
run_cases ${SET_BADINPUT_CASES:-"${cases[@]}"}
