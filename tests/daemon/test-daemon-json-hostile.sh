#!/usr/bin/env bash
# Hostile requests against vhdkitd's JSON door (json-hostile.py: wrong
# types, missing and unknown parameters, paths outside the roots, "..",
# symlinks leading out, malformed, oversized and deeply nested bodies,
# bad routes, slow and half-sent requests, too many connections,
# concurrent good and bad calls), a folder swapped for a symlink to the
# outside while calls run, and a peer that is not allowed on the socket.
# Every request gets the right code and a sentence; the daemon keeps
# serving; no disk changes; nothing outside the root is touched or read.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/daemon-lib.sh"
D=$T/disks O=$T/outside
mkdir -p "$O/sub"
"$VHDKIT" create "$D/a.vhdx" --size 1G >/dev/null
"$VHDKIT" rct enable "$D/a.vhdx"
"$VHDKIT" create "$O/secret.vhdx" --size 1G >/dev/null
"$VHDKIT" create "$O/sub/secret.vhdx" --size 1G >/dev/null
secret_id=$("$VHDKIT" info "$O/secret.vhdx" --json | jf VirtualDiskId)
ln -s "$O/secret.vhdx" "$D/link-out.vhdx"
ln -s "$O" "$D/dirlink"
ln -s loop "$D/loop"
ln -s /dev/null "$D/dev-null-link"
mkfifo "$D/fifo"
cp -a "$O/sub/secret.vhdx" "$O/sub/x.vhdx"      # what a swapped symlink would lead to
sums () { find "$D" "$O" -type f \( -name '*.vhdx' -o -name '*.rct' -o -name '*.mrt' \) -print0 | sort -z | xargs -0 sha256sum; }
sums > "$T/before"
outside () { (cd "$O" && find . -printf '%p %y %s %T@ %C@\n' | sort); }
outside > "$T/outside.before"

start_daemon
"$PY" "$(dirname "$0")/json-hostile.py" "$SOCK" "$D" "$O" || fail "hostile requests (above)"

# A folder of the root swapped, again and again, for a symlink to the
# outside while calls name a disk in it: a call may fail, but never
# reads the outside disk.
mkdir "$D/swap.real"; "$VHDKIT" create "$D/swap.real/x.vhdx" --size 1G >/dev/null
ln -s "$O/sub" "$D/swap.link"
mv "$D/swap.real" "$D/swap"
( for i in $(seq 1 100); do
    mv -T "$D/swap" "$D/swap.real" && mv -T "$D/swap.link" "$D/swap"
    mv -T "$D/swap" "$D/swap.link" && mv -T "$D/swap.real" "$D/swap"
  done ) &
swapper=$!
seen_secret=0 calls=0
out_id=$("$VHDKIT" info "$O/sub/x.vhdx" --json | jf VirtualDiskId)
while kill -0 $swapper 2>/dev/null; do
  r=$(call Msvm_ImageManagementService GetVirtualHardDiskSettingData "{\"Path\":\"$D/swap/x.vhdx\"}")
  calls=$((calls + 1))
  case $r in *"$out_id"*) seen_secret=1; echo "leaked: $r" >&2 ;; esac
  case $(jf ReturnValue "$r") in 0|32769|32779|32774|32768) ;; *) fail "swap: unexpected answer $r" ;; esac
done
wait $swapper || true
[ $seen_secret = 0 ] || fail "a call through a swapped symlink read a disk outside the root"
info "$calls calls during the symlink swaps: none reached the outside"

# A peer the daemon does not allow (needs root to become nobody).
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  chmod 0777 "$T" "$SOCK"
  r=$(setpriv --reuid=65534 --regid=65534 --clear-groups curl -sS --unix-socket "$SOCK" -X POST \
        "http://localhost/$NS/Msvm_ImageManagementService/GetVirtualHardDiskState" -d "{\"Path\":\"$D/a.vhdx\"}" -w ' %{http_code}')
  case $r in *'"ReturnValue":32769'*' 403') ;; *) fail "a peer that is not allowed got: $r" ;; esac
  chmod 0700 "$T"
else
  info "not root: the peer-credential check was not exercised"
fi

stop_daemon
rm -rf "$D/swap" "$D/swap.real" "$D/swap.link"
sums > "$T/after"
diff "$T/before" "$T/after" || fail "a disk changed during the hostile requests"
outside > "$T/outside.after"
diff "$T/outside.before" "$T/outside.after" || fail "something outside the root changed (names, sizes, modification or change times)"
for f in "$D"/*; do
  case ${f##*/} in a.vhdx|a.vhdx.rct|a.vhdx.mrt|link-out.vhdx|dirlink|loop|dev-null-link|fifo) ;;
    *) fail "a hostile request left $f" ;; esac
done
