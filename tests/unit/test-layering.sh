#!/usr/bin/env bash
# No file of libvhdkit calls a file above it (docs/ARCHITECTURE.md,
# "Layers").  From the library's object files in the build directory
# (nm): every undefined symbol of an object that another object of the
# library defines must be defined at the same layer or below.  Besides:
# only lib/api.c defines or calls the public vhdkit_* calls (internal
# code never calls the public API), and every source file of the library
# is in the table below, so that a new file has to be given its layer.
# Calls upward through a table (hooks, drv_next) are function pointers
# and do not show here; that is the permitted way up.
. "$(dirname "$0")/../lib.sh"
need nm awk

# The layer of each source file (docs/ARCHITECTURE.md).  common/ helpers
# are below everything, with the thread-local error.
table='
0 common/cimtime.c
0 common/crc32c.c
0 common/gate.c
0 common/guid.c
0 common/utf16.c
0 lib/error.c
1 lib/io/io.c
1 lib/io/io-posix.c
2 lib/driver.c
2 lib/raw/raw.c
2 lib/vhdx/bat.c
2 lib/vhdx/check.c
2 lib/vhdx/create.c
2 lib/vhdx/format.c
2 lib/vhdx/log.c
2 lib/vhdx/vhdx.c
3 lib/chain.c
4 lib/rct/query.c
4 lib/rct/rct-format.c
4 lib/rct/rct.c
4 lib/rct/track.c
5 lib/disk.c
5 lib/ops.c
6 lib/set/set.c
6 lib/set/vhds.c
7 lib/api.c
'
names='errors, helpers|io|format drivers|chain|tracking|disk|sets|public API'
API=lib/api.c

# The library's sources, as the Makefile finds them (LIB_SRC), and their
# objects in $VHDKIT_BUILD/obj (LIB_OBJ).
cd "$TOP"
srcs=()
for f in lib/*.c lib/*/*.c common/*.c; do [ -f "$f" ] && srcs+=("$f"); done
[ ${#srcs[@]} -gt 0 ] || fail "no library sources under $TOP"

problems=$T/problems
: > "$problems"
printf '%s\n' "$table" | awk 'NF' > "$T/table"
for f in "${srcs[@]}"; do
  grep -qx "[0-7] $f" "$T/table" ||
    echo "$f is in no layer: give it one in the table of tests/unit/test-layering.sh (docs/ARCHITECTURE.md, \"Layers\")" >> "$problems"
done
while read -r _ f; do
  [ -f "$f" ] || echo "the table of tests/unit/test-layering.sh names $f, which does not exist" >> "$problems"
done < "$T/table"

# One line per global symbol: "SOURCE LAYER D|U SYMBOL".
: > "$T/syms"
for f in "${srcs[@]}"; do
  o=$VHDKIT_BUILD/obj/${f%.c}.o
  [ -f "$o" ] || fail "$o is missing (run make; VHDKIT_BUILD=$VHDKIT_BUILD)"
  if [ "$f" -nt "$o" ]; then fail "$o is older than $f (run make)"; fi
  layer=$(awk -v f="$f" '$2 == f { print $1 }' "$T/table")
  [ -n "$layer" ] || continue
  nm -P -g "$o" > "$T/nm" || fail "nm $o failed"
  awk -v f="$f" -v l="$layer" '
    $2 ~ /^[Uwv]$/ { print f, l, "U", $1; next }
    NF >= 2        { print f, l, "D", $1 }' "$T/nm" >> "$T/syms"
done

# check SYMS: prints one line per violation; the last line is the count of
# references between two files of the library that were looked at.
check () {
  awk -v api="$API" -v names="$names" '
    BEGIN { split(names, name, "|") }
    function lname(l) { return "layer " l ", " name[l + 1] }
    $3 == "D" {
      if (!($4 in def)) { def[$4] = $1; dlayer[$4] = $2 }
      if ($4 ~ /^vhdkit_/ && $1 != api)
        print $1 " (" lname($2) ") defines the public " $4 ": every vhdkit_* call is in " api
      next
    }
    { ref[++n] = $0 }
    END {
      checked = 0
      for (i = 1; i <= n; i++) {
        split(ref[i], r, " ")
        f = r[1]; l = r[2]; s = r[4]
        if (s ~ /^vhdkit_/ && f != api) {
          print f " (" lname(l) ") calls the public " s (s in def ? ", defined in " def[s] " (" lname(dlayer[s]) ")" : "") \
                ": internal code must not call the public API"
          continue
        }
        if (!(s in def) || def[s] == f) continue
        checked++
        if (dlayer[s] + 0 > l + 0)
          print f " (" lname(l) ") calls " s ", defined in " def[s] " (" lname(dlayer[s]) "), a layer above it"
      }
      print checked
    }' "$1"
}

check "$T/syms" > "$T/out"
checked=$(tail -n 1 "$T/out")
sed '$d' "$T/out" >> "$problems"

# The test could not fail if nm's output were misread: references between
# the files must have been seen, and a doctored table of symbols with one
# call upward and one call of the public API must be refused.
[ "$checked" -gt 50 ] || fail "only $checked references between the library's files were seen: the test could not fail"
{ cat "$T/syms"; echo "lib/io/io.c 1 U disk_open"; echo "lib/disk.c 5 U vhdkit_disk_open"; } > "$T/doctored"
check "$T/doctored" | sed '$d' > "$T/doctored.out"
grep -q '^lib/io/io.c (layer 1, io) calls disk_open, defined in lib/disk.c (layer 5, disk), a layer above it$' "$T/doctored.out" ||
  fail "an upward call injected into the symbols was not found: the test could not fail"
grep -q '^lib/disk.c (layer 5, disk) calls the public vhdkit_disk_open' "$T/doctored.out" ||
  fail "a call of the public API injected into the symbols was not found: the test could not fail"

if [ -s "$problems" ]; then
  sed 's/^/FAIL: /' "$problems" >&2
  fail "$(wc -l < "$problems") layering problem(s) in $VHDKIT_BUILD/obj (docs/ARCHITECTURE.md, \"Layers\")"
fi
info "${#srcs[@]} files in 8 layers, $checked references between them, none upward, only $API calls vhdkit_*"
