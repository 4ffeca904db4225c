#!/bin/bash
# Installs the OIDC peer's npm packages (oidc-provider, jose) into tests/peers/oidc/node_modules with
# `npm ci`, exactly as package-lock.json says. tests/peers/install.sh runs this; no root needed.
#
# Quick when done: node_modules/.gatehouse-stamp records the hash of package.json + package-lock.json
# and the node major version it was installed for; while they match, nothing is run.
# Without node (or npm), or with node older than 20, it prints a warning and exits 0: only the OIDC tests
# need it. A failed `npm ci` exits 1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

warn() {
  echo "install.sh: WARNING: $*" >&2
  echo "install.sh: WARNING: the OIDC peer (tests/peers/oidc) is NOT installed; its tests will fail" >&2
}
if ! v=$(node -v 2>/dev/null); then warn "node not found (the OIDC peer needs Node.js 20 or newer)"; exit 0; fi
major=${v#v}; major=${major%%.*}
if ! [ "$major" -ge 20 ] 2>/dev/null; then warn "node $v is too old (the OIDC peer needs Node.js 20 or newer)"; exit 0; fi
if ! command -v npm >/dev/null; then warn "npm not found (node $v is there)"; exit 0; fi

stamp="node$major $(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$here/node_modules/.gatehouse-stamp" 2>/dev/null || true)" = "$stamp" ] \
   && [ -f "$here/node_modules/oidc-provider/package.json" ]; then
  echo "install.sh: OIDC peer: npm packages up to date (node $v)" >&2
  exit 0
fi

echo "install.sh: OIDC peer: npm ci in $here (node $v)" >&2
log=$(mktemp /tmp/gatehouse-peers-npm.XXXXXX)
if ! (cd "$here" && npm ci --no-audit --no-fund) >"$log" 2>&1; then
  echo "install.sh: npm ci failed in $here; log: $log" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
# prove that the packages load with this node before saying so
if ! (cd "$here" && node --input-type=module -e "await import('oidc-provider'); await import('jose');") >>"$log" 2>&1; then
  echo "install.sh: oidc-provider does not load with node $v; log: $log" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
echo "$stamp" > "$here/node_modules/.gatehouse-stamp"
rm -f "$log"
echo "install.sh: OIDC peer: installed $(cd "$here" && node -p "require('oidc-provider/package.json').version" 2>/dev/null | sed 's/^/oidc-provider /')" >&2
