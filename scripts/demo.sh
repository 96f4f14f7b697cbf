#!/usr/bin/env bash
# scripts/demo.sh — a short end-to-end run of the vhdkit CLI (`make run`).
#
# In a temporary directory: create a 1 GiB dynamic VHDX, write two patterns,
# read them back, add a differencing child and write to it, check both
# images, convert the child to raw and compare it with an image built
# independently with dd.  Every command is printed before it runs.
#
# Environment: VHDKIT (default build/vhdkit), VHDKIT_DEMO_KEEP=1 keeps the
# temporary directory.
set -eEuo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
VHDKIT=${VHDKIT:-$TOP/build/vhdkit}
if [ ! -x "$VHDKIT" ]; then
  echo "demo: $VHDKIT not found; build it first with 'make'" >&2
  exit 1
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/vhdkit-demo.XXXXXX")
if [ "${VHDKIT_DEMO_KEEP:-0}" = 1 ]; then
  trap 'echo "demo: files kept in $dir"' EXIT
else
  trap 'rm -rf "$dir"' EXIT
fi
trap 'echo "demo: FAILED (exit $?): $BASH_COMMAND" >&2; trap - ERR' ERR
cd "$dir"

# The commands below are shown exactly as they run, with "vhdkit" standing
# for the binary under test.
vhdkit () { "$VHDKIT" "$@"; }

step () {
  printf '+ %s\n' "$1"
  eval "$1"
}

# same_sha WHAT CMD-A CMD-B: both commands must print the same bytes.
same_sha () {
  local a b
  printf '+ %s | sha256sum\n' "$2"
  a=$(eval "$2" | sha256sum | cut -d' ' -f1)
  printf '+ %s | sha256sum\n' "$3"
  b=$(eval "$3" | sha256sum | cut -d' ' -f1)
  if [ "$a" != "$b" ]; then
    echo "demo: $1 differs: $a vs $b" >&2
    return 1
  fi
  echo "  $1: identical ($a)"
}

# compare_images FMT-A A B: A (format FMT-A) and raw image B hold the same
# virtual disk.
compare_images () {
  if command -v qemu-img >/dev/null 2>&1; then
    step "qemu-img compare -f $1 -F raw $2 $3"
  else
    echo "demo: qemu-img not installed; comparing with cmp instead"
    step "cmp $2 $3 && echo 'Images are identical.'"
  fi
}

echo "== Patterns (made with coreutils, kept as files to compare against)"
# 8-byte numbered lines: 4 MiB of A, 3 MiB of B, 2 MiB of C.
step "awk 'BEGIN { for (i = 0; i < 524288; i++) printf \"A%06d\\n\", i }' > a.bin"
step "awk 'BEGIN { for (i = 0; i < 393216; i++) printf \"B%06d\\n\", i }' > b.bin"
step "awk 'BEGIN { for (i = 0; i < 262144; i++) printf \"C%06d\\n\", i }' > c.bin"

echo
echo "== A 1 GiB dynamic VHDX with data at two offsets"
step "vhdkit create base.vhdx --size 1G --type dynamic"
step "vhdkit write base.vhdx --offset 16M --length 4M < a.bin"
# 703M..706M crosses the 704 MiB boundary between two 32 MiB payload blocks.
step "vhdkit write base.vhdx --offset 703M --length 3M < b.bin"
step "vhdkit info base.vhdx"
same_sha "pattern A read back" \
  "vhdkit read base.vhdx --offset 16M --length 4M" "cat a.bin"
same_sha "pattern B read back" \
  "vhdkit read base.vhdx --offset 703M --length 3M" "cat b.bin"
same_sha "an unwritten range (zeros)" \
  "vhdkit read base.vhdx --offset 512M --length 1M" "head -c 1M /dev/zero"

echo
echo "== A differencing child: writes go to the child, the rest from the parent"
# The child takes its virtual size from the parent.
step "vhdkit create child.avhdx --type differencing --parent base.vhdx"
# 705M..707M overwrites the last MiB of pattern B and one MiB after it.
step "vhdkit write child.avhdx --offset 705M --length 2M < c.bin"
step "vhdkit info child.avhdx"
same_sha "child 703M..707M (B, then C)" \
  "vhdkit read child.avhdx --offset 703M --length 4M" \
  "{ head -c 2M b.bin; cat c.bin; }"
same_sha "parent unchanged at 703M..706M" \
  "vhdkit read base.vhdx --offset 703M --length 3M" "cat b.bin"

echo
echo "== Consistency checks"
step "vhdkit check base.vhdx"
echo "  base.vhdx: no problems found"
step "vhdkit check child.avhdx"
echo "  child.avhdx: no problems found"

echo
echo "== Convert the child (with its parent's data) to raw and compare"
step "vhdkit convert child.avhdx child.raw --format raw"
echo "# the same disks built independently with dd:"
step "truncate -s 1G base-expected.raw"
step "dd if=a.bin of=base-expected.raw bs=1M seek=16 conv=notrunc status=none"
step "dd if=b.bin of=base-expected.raw bs=1M seek=703 conv=notrunc status=none"
step "cp --sparse=always base-expected.raw child-expected.raw"
step "dd if=c.bin of=child-expected.raw bs=1M seek=705 conv=notrunc status=none"
compare_images vhdx base.vhdx base-expected.raw
compare_images raw child.raw child-expected.raw

echo
echo "== Change tracking and a VHD Set with snapshots"
step "vhdkit create vm.vhdx --size 4G"
step "vhdkit write vm.vhdx --offset 0 < a.bin"
step "vhdkit set convert vm.vhdx"
step "s1=\$(vhdkit set snapshot vm.vhds); echo \"snapshot 1: \$s1\""
step "vhdkit write vm.vhds --offset 1G < b.bin"
step "s2=\$(vhdkit set snapshot vm.vhds); echo \"snapshot 2: \$s2\""
step "vhdkit write vm.vhds --offset 2G --length 1M --zero"
echo "# what an incremental backup of snapshot 2 copies (changed since snapshot 1):"
step "vhdkit changes vm.vhds --limit-id \$s1 --target-snapshot-id \$s2 --all"
echo "# and what changed since snapshot 2 in the live disk:"
step "vhdkit changes vm.vhds --limit-id \$s2 --all --kinds"
same_sha "snapshot 1 still reads the first state" "vhdkit read vm.vhds@\$s1 --offset 0 --length 1M" "head -c 1M a.bin"
step "vhdkit set delete vm.vhds \$s1 --persist-reference --no-progress"
step "vhdkit set snapshots vm.vhds"
step "vhdkit set info vm.vhds"

echo
echo "demo: PASSED (create, write, info, read, differencing child, check, convert, change tracking, VHD Sets)"
