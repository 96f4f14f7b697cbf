#!/usr/bin/env bash
# QEMU 1.6.50 image left with an active log (LogGuid set): one log entry
# (sequence 7) writes BAT sector 0 and makes block 17 FULLY_PRESENT.  A
# read-only open must replay it in memory (MS-VHDX 2.3.3) — without
# writing to the file — so that 0..18 MiB reads 0xa5.  A reader that
# ignores the log gets cc3d67a6… (libvhdi 20210425 does; qemu refuses).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/corpus-lib.sh"

rel=qemu-iotests/iotest-dirtylog-10G-4M.vhdx.bz2
good=179cefe8b0587f123393eedf2aa7aa8d25798591178e6bc3950a09762f38f96f
# (the un-replayed content would hash to cc3d67a6…; block 17 tells them apart)
f=$(corpus_copy "$rel")

# The copy really has an active log (else this test would prove nothing).
lg=$("$PY" "$MUT" get "$f" current.log_guid)
[ "$lg" != 00000000-0000-0000-0000-000000000000 ] || fail "test image has no active log"

M=1048576
got=$("$VHDKIT" read "$f" --offset $((17*M)) --length $M | sha_stdin)
want=$(head -c $M /dev/zero | tr '\0' '\245' | sha_stdin)
if [ "$got" != "$want" ]; then
  fail "block 17 (17M..18M) of iotest-dirtylog-10G-4M does not read 0xa5: the log was not replayed"
fi

check_vhdx "$f" "$good" 3 10737418240 1048576 512 512 \
  VirtualDiskId=9cba4bd2-31ac-6745-a10e-380e9086de9d \
  DataWriteGuid=5ab1b2ee-2f64-2e40-8a9b-0f0bcfdcd544

# Still dirty on disk: the replay happened in memory only.
lg2=$("$PY" "$MUT" get "$f" current.log_guid)
[ "$lg2" = "$lg" ] || fail "read-only open changed the header's LogGuid ($lg -> $lg2)"
corpus_intact "$rel"
