#!/usr/bin/env bash
# Install the Debian packages that building vhdkit and running all of its
# tests need.  Safe to run again: packages already installed are skipped, and
# `apt-get update` runs only when something is missing.  Prints one line when
# nothing is missing; exits non-zero, naming the culprit, on any failure.
set -euo pipefail

packages=(
  build-essential       # gcc, make
  clang
  libclang-rt-14-dev    # libFuzzer and sanitizer runtimes for clang
  qemu-utils            # qemu-img, qemu-io, qemu-nbd
  libvhdi-utils         # vhdiinfo, vhdimount
  python3-libvhdi       # pyvhdi for /usr/bin/python3
  libnbd-bin            # nbdinfo, nbdcopy, nbdsh
  fio
  sblim-wbemcli
  curl
  xz-utils
  bzip2
  gzip
  hyperfine
  go-md2man             # man pages from docs/*.md (make install)
  pkg-config
  libmicrohttpd-dev     # vhdkitd: the HTTP doors
  libjansson-dev        # vhdkitd: JSON
  libsystemd-dev        # vhdkitd: sd_notify
  libxml2-dev           # vhdkitd: the CIM-XML door's parser
  libgnutls28-dev       # vhdkitd: TLS certificate checks
  libcrypt-dev          # vhdkitd: yescrypt password hashes
  gnutls-bin            # certtool (tests/daemon/test-daemon-tcp.sh)
  strace                # fault injection into real system calls (tests/rct/test-rct-retry.sh)
  python3
  jq                    # the vhdkitd tests read JSON answers (tests/daemon/daemon-lib.sh)
  libmicrohttpd-dev     # vhdkitd: HTTP
  libjansson-dev        # vhdkitd and vhdkit --connect: JSON
  libcurl4-openssl-dev  # vhdkit --connect: HTTP over vhdkitd's Unix socket
  libsystemd-dev        # vhdkitd: sd_notify
)

installed () {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
      echo "deps: ERROR: not root and sudo is not available; install as root: ${missing[*]}" >&2
      exit 1
    }
    sudo=(sudo)
  fi
  # sudo drops the environment, so pass DEBIAN_FRONTEND through env(1).
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null; then
    echo "deps: ERROR: apt-get update failed" >&2
    exit 1
  fi
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
       apt-get install -y -q "${missing[@]}" </dev/null; then
    echo "deps: ERROR: apt-get install failed for: ${missing[*]}" >&2
    exit 1
  fi
  still=()
  for p in "${missing[@]}"; do
    installed "$p" || still+=("$p")
  done
  if [ ${#still[@]} -gt 0 ]; then
    echo "deps: ERROR: still not installed after apt-get: ${still[*]}" >&2
    exit 1
  fi
fi

# The packages can be there while the commands are not (a renamed binary, a
# python3 that is not Debian's): check what the tests actually run.
absent=()
for c in cc make clang qemu-img qemu-io vhdiinfo nbdinfo fio wbemcli curl \
         xz bzip2 gzip hyperfine strace certtool; do
  command -v "$c" >/dev/null 2>&1 || absent+=("$c")
done
/usr/bin/python3 -c 'import pyvhdi' >/dev/null 2>&1 ||
  absent+=("pyvhdi (module for /usr/bin/python3)")
if [ ${#absent[@]} -gt 0 ]; then
  for a in "${absent[@]}"; do
    echo "deps: ERROR: missing after install: $a" >&2
  done
  exit 1
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installed ${#missing[@]} package(s); all present"
else
  echo "deps: all present"
fi
