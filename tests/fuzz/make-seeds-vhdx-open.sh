#!/usr/bin/env bash
# Generated seeds for fuzz-vhdx-open: small whole images made by vhdkit
# (dynamic, fixed, 4096-byte sectors, differencing) and the small corpus
# images when the corpus is present.
set -eu
out=$1 vhdkit=$2
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
"$vhdkit" create "$t/d.vhdx" --size 4M --block-size 1M
head -c 64K /dev/urandom | "$vhdkit" write "$t/d.vhdx" --offset 1M
"$vhdkit" create "$t/f.vhdx" --size 1M --type fixed --block-size 1M
"$vhdkit" create "$t/k.vhdx" --size 2M --block-size 1M --logical-sector-size 4096
"$vhdkit" create "$t/c.vhdx" --parent "$t/d.vhdx" --block-size 1M
head -c 4K /dev/urandom | "$vhdkit" write "$t/c.vhdx" --offset 8K
for f in "$t"/*.vhdx; do cp "$f" "$out/gen-$(basename "$f")"; done
c=${VHDKIT_CORPUS:-$(dirname "$0")/../../../shared/corpus}
if [ -d "$c" ]; then
  for f in dfvfs/ntfs-differential.vhdx dfvfs/ntfs-parent.vhdx qemu/dyn-bs1M-64M.vhdx; do
    [ -f "$c/$f" ] && cp "$c/$f" "$out/corpus-$(basename "$f")" && chmod u+w "$out/corpus-$(basename "$f")"
  done
  xz -dc "$c/dfvfs/ntfs-dynamic.vhdx.xz" > "$out/corpus-ntfs-dynamic.vhdx" 2>/dev/null || true
fi
