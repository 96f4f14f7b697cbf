#!/usr/bin/env bash
# Dynamic VHDX images made and written by qemu-img/qemu-io are read by
# vhdkit exactly as qemu reads them; vhdkit's further writes keep them valid
# for qemu-img check and readable by qemu-img and libvhdi.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/peer-lib.sh"
. "$(dirname "$0")/qemu-made.sh"
need_vhdkit
need qemu-img qemu-io

qemu_made dyn-bs1M   64M      subformat=dynamic,block_size=1M
qemu_made dyn-bs8M   72M+512  subformat=dynamic,block_size=8M
qemu_made dyn-bs32M  100M     subformat=dynamic,block_size=32M
qemu_made dyn-nozero 48M      subformat=dynamic,block_size=2M,block_state_zero=off,log_size=4M
qemu_made dyn-default 130M    subformat=dynamic
