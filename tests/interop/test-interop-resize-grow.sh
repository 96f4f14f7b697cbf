#!/usr/bin/env bash
# vhdkit resize (grow): old content intact, the new tail reads zero, and
# qemu-img (info, check, convert) and libvhdi agree — for dynamic and fixed
# images, and for a grow far enough that the BAT no longer fits its region.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/peer-lib.sh"
need_vhdkit
need qemu-img
M=1048576

qemu_size () {
  qemu-img info -f vhdx --output=json "$1" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])'
}

grow () {
  local type=$1 old=$2 new=$3 bs=$4 img=$T/$1.vhdx exp=$T/$1.raw
  vk create "$img" --size "$old" --type "$type" --block-size "$bs"
  mk_expect "$exp" "$old"
  write_pattern "$img" "$exp" "$old" "$(to_bytes "$bs")"
  vk resize "$img" --size "$new"
  truncate -s "$new" "$exp"
  expect_info "$img" MaxInternalSize="$new" Type="$([ "$type" = fixed ] && echo 2 || echo 3)"
  [ "$(qemu_size "$img")" = "$new" ] || fail "qemu-img info: $type image is $(qemu_size "$img") bytes after resize to $new"
  local tail
  tail=$("$VHDKIT" read "$img" --offset "$old" --length $((new - old)) | sha_stdin)
  same "new tail of the $type image" "$tail" "$(head -c $((new - old)) /dev/zero | sha_stdin)"
  expect_content "$img" "$exp" qemu
  # The grown area is writable, up to the new last sector.
  rand_write "$img" "$exp" $((old - 512)) 1024
  rand_write "$img" "$exp" $((new - 512)) 512
  expect_content "$img" "$exp" qemu
  if [ "$type" = fixed ]; then
    [ "$(stat -c %s "$img")" -ge "$new" ] || fail "fixed image smaller than its new size after resize"
  fi
  rm -f "$img" "$exp"
}

grow dynamic $((64*M)) $((100*M + 512)) 1M
grow fixed   $((8*M))  $((24*M))        1M
grow dynamic $((33*M)) $((97*M))        32M

# Large grow: 1 MiB blocks at 512-byte sectors cover ~128 GiB per MiB of BAT,
# so 200 GiB needs a larger BAT.  Hashing 200 GiB would take minutes (qemu's
# vhdx driver has no block status), so constant patterns are written and
# each range is verified by qemu-io "read -P" and by vhdkit.
G=$((1024*M))
big=$T/big.vhdx
newsize=$((200*G))
vk create "$big" --size 64M --type dynamic --block-size 1M
pat_write () {  # OFF LEN BYTE
  head -c "$2" /dev/zero | tr '\0' "\\$(printf %o "$3")" |
    "$VHDKIT" write "$big" --offset "$1" --length "$2" || fail "vhdkit write at $1 failed"
}
pat_write 0 $((2*M)) 0x11
pat_write $((63*M)) "$M" 0x22
vk resize "$big" --size "$newsize"
pat_write $((newsize - 3*M)) $((3*M)) 0x33
pat_write $((130*G + 512)) 4096 0x44
[ "$(qemu_size "$big")" = "$newsize" ] || fail "qemu-img info: big image is $(qemu_size "$big") bytes, expected $newsize"
qemu_check "$big"
expect_info "$big" MaxInternalSize="$newsize"
# OFF LEN BYTE: what the grown image must hold there.
ranges="
0 $((2*M)) 0x11
$((2*M)) $((61*M)) 0
$((63*M)) $M 0x22
$((64*M)) $M 0
$((130*G - M)) $M 0
$((130*G)) 512 0
$((130*G + 512)) 4096 0x44
$((130*G + 4608)) $((M - 4608)) 0
$((newsize - 4*M)) $M 0
$((newsize - 3*M)) $((3*M)) 0x33
"
while read -r -u 3 off len byte; do
  [ -n "$off" ] || continue
  out=$(qemu-io -f vhdx -r -c "read -P $byte $off $len" "$big" 2>&1) ||
    fail "qemu-io read -P $byte $off $len on the grown image failed: $out"
  case "$out" in *"verification failed"*) fail "qemu-io: grown image has wrong data at $off+$len (want $byte): $out" ;; esac
  a=$("$VHDKIT" read "$big" --offset "$off" --length "$len" | sha_stdin)
  b=$(head -c "$len" /dev/zero | tr '\0' "\\$(printf %o "$byte")" | sha_stdin)
  [ "$a" = "$b" ] || fail "vhdkit read of the grown image: wrong data at $off+$len (want $byte)"
done 3<<<"$ranges"
