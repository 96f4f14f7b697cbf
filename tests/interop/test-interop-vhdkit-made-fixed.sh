#!/usr/bin/env bash
# fixed VHDX images made and written by vhdkit read identically in qemu-img
# (which must also find them valid: qemu-img check) and libvhdi, for block
# sizes 1, 32 and 256 MiB and sizes that are not block multiples.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/peer-lib.sh"
. "$(dirname "$0")/made-by-vhdkit.sh"
need_vhdkit
need qemu-img

made_by_vhdkit fixed 1M  65M+512
made_by_vhdkit fixed 1M  64M
made_by_vhdkit fixed 32M 65M+512
made_by_vhdkit fixed 256M 257M+512
