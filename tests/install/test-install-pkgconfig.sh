#!/usr/bin/env bash
# make install into a staging root, then build and run a program against
# the installed tree using only `pkg-config --cflags --libs vhdkit`; the
# shared library exports the public API and nothing else, and carries
# its soname.
. "$(dirname "$0")/../lib.sh"
need pkg-config go-md2man nm cc
ROOT=$T/root
make -s -C "$TOP" install B="$VHDKIT_BUILD" DESTDIR="$ROOT" PREFIX=/usr > "$T/install.log" 2>&1 ||
  fail "make install failed: $(tail -5 "$T/install.log")"
for f in usr/lib/libvhdkit.so.0 usr/lib/libvhdkit.so usr/include/vhdkit.h usr/lib/pkgconfig/vhdkit.pc \
         usr/bin/vhdkit usr/share/man/man1/vhdkit.1; do
  [ -e "$ROOT/$f" ] || fail "make install did not install $f"
done
export PKG_CONFIG_PATH=$ROOT/usr/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$ROOT
flags=$(pkg-config --cflags --libs vhdkit) || fail "pkg-config does not know vhdkit"
cat > "$T/prog.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <vhdkit.h>
int main (int argc, char **argv)
{
  struct vhdkit_create_params p = VHDKIT_CREATE_PARAMS_INIT;
  p.size = 8 << 20;
  if (vhdkit_disk_create (argv[1], &p) == -1) { fprintf (stderr, "%s\n", vhdkit_get_error ()); return 1; }
  struct vhdkit_disk *d = vhdkit_disk_open (argv[1], VHDKIT_OPEN_RDWR);
  char buf[4096];
  memset (buf, 0x5a, sizeof buf);
  if (!d || vhdkit_disk_pwrite (d, buf, sizeof buf, 4096, VHDKIT_IO_FUA) == -1) return 1;
  memset (buf, 0, sizeof buf);
  if (vhdkit_disk_pread (d, buf, sizeof buf, 4096, 0) == -1 || buf[100] != 0x5a) return 1;
  if (vhdkit_disk_close (d) == -1) return 1;
  printf ("%s\n", vhdkit_get_version ());
  return 0;
}
C
# shellcheck disable=SC2086
cc -o "$T/prog" "$T/prog.c" $flags || fail "a program does not build with: $flags"
out=$(LD_LIBRARY_PATH=$ROOT/usr/lib "$T/prog" "$T/d.vhdx") || fail "the program failed against the installed library"
want=$(sed -n 's/^#define VHDKIT_VERSION_STRING "\(.*\)"/\1/p' "$TOP/include/vhdkit.h")
[ "$out" = "$want" ] || fail "vhdkit_get_version says '$out', the header '$want'"
deps=$(LD_LIBRARY_PATH=$ROOT/usr/lib ldd "$T/prog")
case $deps in
  *"libvhdkit.so.0 => $ROOT/usr/lib/libvhdkit.so.0"*) ;;
  *) fail "the program does not load libvhdkit.so.0 from the installed tree: $deps" ;;
esac
qemu_ok=$("$ROOT/usr/bin/vhdkit" info "$T/d.vhdx" --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["MaxInternalSize"])')
[ "$qemu_ok" = $((8 << 20)) ] || fail "the installed vhdkit reads another size: $qemu_ok"
syms=$(nm -D --defined-only "$ROOT/usr/lib/libvhdkit.so.0")
other=$(printf '%s\n' "$syms" | awk '$2 ~ /[TDBR]/ && $3 !~ /^(vhdkit_|VHDKIT_)/ {print $3}')
[ -z "$other" ] || fail "libvhdkit.so.0 exports internal symbols: $(echo $other | head -c 300)"
soname=$(readelf -d "$ROOT/usr/lib/libvhdkit.so.0" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = libvhdkit.so.0 ] || fail "soname is '$soname'"
info "installed tree works with pkg-config; $(printf '%s\n' "$syms" | grep -c ' T vhdkit_') public functions exported"
