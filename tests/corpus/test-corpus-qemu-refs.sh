#!/usr/bin/env bash
# The qemu-img 7.2 reference images in corpus/qemu/ (make_qemu_refs.sh):
# 1, 2, 8, 32 MiB blocks, fixed with ZERO blocks, a BAT crossing chunk 0->1,
# block_state_zero=off with a 4 MiB log, and a convert output.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/corpus-lib.sh"

# file | type | virtual size | block | sector L P | VirtualDiskId | content sha256
refs='
qemu/dyn-bs1M-64M.vhdx           3 67108864    1048576  512 512 2de8021e-a0bc-eb43-829a-bb6a01721457 a4b7980ef41318eab087d6e76688ec3178a7d924c7a45f5f48b998b7479c90cc
qemu/dyn-bs32M-128M.vhdx.xz      3 134217728   33554432 512 512 20308f1e-1a92-994d-a9e2-5a6c157ff1b2 d3aa8a93e0407a931aae5083e1d1d0aca5d854cb9b6d2528010cf7cdcaf9ed1b
qemu/dyn-default-empty-256M.vhdx 3 268435456   8388608  512 512 fe42acfe-e683-7048-909e-f88b3134a199 a6d72ac7690f53be6ae46ba88506bd97302a093f7108472bd9efc3cefda06484
qemu/fixed-bs1M-8M.vhdx          2 8388608     1048576  512 512 f16ef2cd-ae24-904e-811b-24b09446c654 4a020ea9d838256460aea386e12b25306467262a3067709d9c288cac167f70ba
qemu/dyn-bs1M-10G.vhdx           3 10737418240 1048576  512 512 a426fdac-a1c7-5146-b0e1-3f9679d00222 c32c2dbe35ee712b4175f9c1ec1078254a96d992808fb66888018d9fcea2daee
qemu/dyn-bs8M-log4M-64M.vhdx     3 67108864    8388608  512 512 ec65f9df-1c09-8242-8af3-c4c5beac7854 2bf176078bb7376d662ba764ac3849de8fc800580e129bdfa5458350b1d57583
qemu/convert-bs2M-48M.vhdx       3 50331648    2097152  512 512 dce623a3-a242-764f-a0fd-49cb094af259 e769e7bf4f7bf91b7a70ec3a60b417dcffe478bf9b5e6aab4c38666e5bf7b5b0
'

one_ref () {
  local rel=$1 type=$2 vsize=$3 bs=$4 lss=$5 pss=$6 id=$7 hash=$8 f dwg
  f=$(corpus_copy "$rel")
  # The current header's DataWriteGuid, as the test's own parser finds it.
  dwg=$("$PY" "$MUT" get "$f" current.data_write_guid)
  check_vhdx "$f" "$hash" "$type" "$vsize" "$bs" "$lss" "$pss" \
    VirtualDiskId="$id" DataWriteGuid="$dwg" ChainDepth=1
  corpus_intact "$rel"
}

failed=()
while read -r -u 3 rel type vsize bs lss pss id hash; do
  [ -n "$rel" ] || continue
  try one_ref "$rel" "$type" "$vsize" "$bs" "$lss" "$pss" "$id" "$hash"
  [ "$try_rc" -eq 0 ] || failed+=("$rel")
done 3<<<"$refs"

[ ${#failed[@]} -eq 0 ] || fail "qemu reference images that failed: ${failed[*]}"
