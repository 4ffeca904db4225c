#!/bin/bash
# Builds release binaries and runs the benchmarks; prints figures (see
# docs/benchmarks.md for recorded ones).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# the LDAP bench's reference engines (Debian's, for /usr/bin/python3), and python3-venv for bench_venv.sh
for pkg in python3-ldap python3-django python3-django-auth-ldap python3-jwt python3-cryptography python3-venv; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "$pkg" >/dev/null; }
done
scripts/bench_venv.sh   # pyrad, for the RADIUS bench
cargo build --release --workspace
cargo bench -p gatehouse-e2e --bench socket
cargo bench -p gatehouse-e2e --bench plugin_modes
cargo bench -p gatehouse-e2e --bench ldap
cargo bench -p gatehouse-e2e --bench tokens
cargo bench -p gatehouse-e2e --bench jwt_verify
cargo bench -p gatehouse-e2e --bench issue
cargo bench -p gatehouse-e2e --bench store
cargo bench -p gatehouse-e2e --bench tacacs
cargo bench -p gatehouse-e2e --bench radius
cargo bench -p gatehouse-e2e --bench saml
cargo bench -p gatehouse-e2e --bench nss
