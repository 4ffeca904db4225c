#!/bin/bash
# Installs what the build and the test suite need on a fresh Debian machine
# (idempotent: only what is missing). Run as root, or with sudo available.
set -euo pipefail
cd "$(dirname "$0")/.."
# Rust is not a Debian package here (Debian's is older than the
# workspace's rust-version): install it with rustup first; this says how.
. scripts/lib/require-rust.sh
require_rust setup

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

need_pkgs=()
command -v systemd-socket-activate >/dev/null || need_pkgs+=(systemd)
command -v runuser >/dev/null || need_pkgs+=(util-linux)
command -v cc >/dev/null || need_pkgs+=(gcc libc6-dev)
command -v pkg-config >/dev/null || need_pkgs+=(pkg-config)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "setup: installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >/dev/null
  # policy-rc.d keeps package scripts from starting system services
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  $SUDO apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >/dev/null
  [ "$own_policy" = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
fi

# Node.js 20 or newer for the OIDC peer (oidc-provider): Debian's nodejs
# when its candidate is new enough, else say what to install.
node_major() { node -v 2>/dev/null | sed 's/^v\([0-9]*\).*/\1/'; }
if [ "$(node_major || true)" = "" ] || [ "$(node_major)" -lt 20 ]; then
  cand=$(apt-cache policy nodejs 2>/dev/null | sed -n 's/ *Candidate: \([0-9]*\).*/\1/p')
  if [ -n "$cand" ] && [ "$cand" -ge 20 ] 2>/dev/null; then
    echo "setup: installing nodejs $cand and npm"
    $SUDO apt-get install -y -q --no-install-recommends nodejs npm >/dev/null
  else
    echo "setup: WARNING: the OIDC tests need Node.js 20 or newer (found: $(node -v 2>/dev/null || echo none));" >&2
    echo "setup: WARNING: this Debian offers ${cand:-no nodejs}: install Node.js 20+ from nodejs.org or NodeSource, then run me again" >&2
  fi
fi

# Real servers the end-to-end tests start (slapd, …): tests/peers installs them.
$SUDO bash tests/peers/install.sh
# The TACACS+ reference client (PyPI tacacs_plus) in a venv, as the calling user.
bash tests/peers/tacacs/install.sh

id nobody >/dev/null 2>&1 || $SUDO useradd --system --no-create-home --shell /usr/sbin/nologin nobody

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
# the package test (tests/tests/package.rs) runs scripts/package.sh --debug
if ! cargo deb --version >/dev/null 2>&1; then
  echo "setup: installing cargo-deb"
  cargo install --locked cargo-deb --version 3.8.0
fi
echo "setup: ok"
