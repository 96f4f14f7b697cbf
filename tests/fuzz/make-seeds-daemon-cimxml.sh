#!/usr/bin/env bash
# make-seeds-daemon-cimxml.sh OUTDIR VHDKIT: seeds for fuzz-daemon-cimxml, one
# call of every method of vhdkitd's table (vhdkitd beside VHDKIT).
set -euo pipefail
d=$(dirname "$2")
"$d/vhdkitd" --api-doc > "$1/.api.md"
/usr/bin/python3 "$(dirname "$0")/make-seeds-daemon.py" cimxml "$1" "$1/.api.md"
rm -f "$1/.api.md"
