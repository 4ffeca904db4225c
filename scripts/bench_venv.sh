#!/bin/bash
# Makes target/bench-venv: a private Python venv with the reference engines the benchmarks compare
# against that Debian does not package (pyrad for the RADIUS bench). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -c 'import pyrad' 2>/dev/null || "$venv/bin/pip" install -q 'pyrad==2.6.0'
echo "bench_venv: $venv ready"
