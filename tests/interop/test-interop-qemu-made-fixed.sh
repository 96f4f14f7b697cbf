#!/usr/bin/env bash
# Fixed VHDX images made and written by qemu-img/qemu-io are read by vhdkit
# exactly as qemu reads them; vhdkit's further writes keep them valid for
# qemu-img check and readable by qemu-img and libvhdi.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/peer-lib.sh"
. "$(dirname "$0")/qemu-made.sh"
need_vhdkit
need qemu-img qemu-io

qemu_made fixed-bs1M  24M      subformat=fixed,block_size=1M
qemu_made fixed-bs8M  40M+512  subformat=fixed,block_size=8M
qemu_made fixed-bs32M 70M      subformat=fixed,block_size=32M
