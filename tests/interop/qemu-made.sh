# shellcheck shell=bash
# Shared body of test-interop-qemu-made-*.sh:
# qemu_made NAME SIZE OPTIONS: qemu-img creates the image with OPTIONS and
# qemu-io writes patterns into it; vhdkit reads exactly what qemu-img reads;
# then vhdkit writes more, and qemu-img check passes and qemu-img, libvhdi
# and vhdkit all read the expected content.
qemu_made () {
  local name=$1 size=$2 opts=$3 img exp sizeb bs got M=1048576
  sizeb=$(to_bytes "$size")
  img=$T/$name.vhdx; exp=$T/$name.raw
  info "qemu-img create -o $opts, $size"
  qemu-img create -q -f vhdx -o "$opts" "$img" "$sizeb" || fail "qemu-img create -o $opts failed"
  bs=$(qemu-img info -f vhdx --output=json "$img" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["cluster-size"])')
  qemu-io -f vhdx \
    -c "write -P 0xab 0 1M" \
    -c "write -P 0xcd $((3*M + 512)) 512" \
    -c "write -P 0x5a $((bs - 1024)) 2K" \
    -c "write -P 0x77 $((sizeb - 4096)) 4K" \
    -c "write -z $((M/2)) 64K" \
    "$img" >/dev/null || fail "qemu-io could not write $name"
  if [ "$sizeb" -ge $((3*bs)) ]; then
    qemu-io -f vhdx -c "write -P 0x3c $((2*bs)) $bs" "$img" >/dev/null || fail "qemu-io write failed"
  fi
  qemu-img convert -f vhdx -O raw "$img" "$exp" || fail "qemu-img convert $name failed"
  expect_info "$img" Format=3 MaxInternalSize="$sizeb" BlockSize="$bs" DataWriteGuid="$("$PY" "$MUT" get "$img" current.data_write_guid)"
  got=$(vk_sha "$img"); same "vhdkit read of qemu-made $name" "$got" "$(file_sha "$exp")"
  local rc=0
  "$VHDKIT" check "$img" >"$T/check.out" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || fail "vhdkit check of qemu-made $name exited $rc: $(cat "$T/check.out")"

  # vhdkit now writes into qemu's image.
  write_pattern "$img" "$exp" "$sizeb" "$bs"
  rand_write "$img" "$exp" $((M - 512)) 4096                    # over qemu's 0xab data
  rand_write "$img" "$exp" $((3*M)) 4096                        # around qemu's single sector
  expect_content "$img" "$exp" qemu
  rm -f "$img" "$exp"
}
