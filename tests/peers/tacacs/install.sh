#!/bin/bash
# Creates tests/peers/tacacs/venv holding the PyPI reference client `tacacs_plus` (pinned below), which
# the tests run against the project's own TACACS+ test server (server.py) to prove the server right.
# No root needed (python3 with the venv module: Debian's python3-venv, which tests/peers/install.sh
# installs). Idempotent and quick when done (a stamp file names the pinned version); serialised with
# flock, since several test processes may call it at once. Exits 1 when the venv cannot be made.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=2.6
stamp="$here/venv/.gatehouse-tacacs_plus-$version"

exec 9>"$here/.install.lock"
flock 9
if [ -f "$stamp" ] && [ -x "$here/venv/bin/tacacs_client" ]; then
  exit 0
fi
echo "install.sh: TACACS+ peer: creating $here/venv with tacacs_plus==$version" >&2
rm -rf "$here/venv"
if ! python3 -m venv "$here/venv" >&2; then
  echo "install.sh: python3 -m venv failed: install python3-venv (tests/peers/install.sh)" >&2
  exit 1
fi
"$here/venv/bin/pip" install --quiet --disable-pip-version-check "tacacs_plus==$version" >&2
touch "$stamp"
echo "install.sh: TACACS+ peer: ready" >&2
