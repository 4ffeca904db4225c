#!/bin/bash
# Builds the Debian package (cargo-deb): the binaries, systemd units,
# sysusers/tmpfiles snippets, the example configuration, man pages and shell
# completions. Prints the .deb's path on the last line.
#   scripts/package.sh            # release build: target/debian/gatehouse_VERSION_ARCH.deb
#   scripts/package.sh --debug    # no build: the debug binaries `cargo build` made
#                                 # (CI's package test), fast compression:
#                                 # target/debian-debug/gatehouse_VERSION_ARCH.deb
# $CARGO_TARGET_DIR is honoured (default: target).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/require-rust.sh
require_rust package.sh
# cargo-deb 3.8 packages a dev-profile build with a deprecation warning
# (--debug); a later major version may refuse to: pinned.
CARGO_DEB_VERSION=3.8.0
profile=release
case "${1:-}" in
  "") ;;
  --debug) profile=debug ;;
  *) echo "usage: scripts/package.sh [--debug]" >&2; exit 2 ;;
esac
if ! cargo deb --version >/dev/null 2>&1; then
  echo "package.sh: installing cargo-deb $CARGO_DEB_VERSION" >&2
  cargo install --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi
target=${CARGO_TARGET_DIR:-target}
bins=$target/$profile
if [ "$profile" = release ]; then
  cargo build --release --locked -p gatehouse-daemon --bins
  deb_args=(-o "$target/debian")
else
  for b in gatehoused gatehouse; do
    if [ ! -x "$bins/$b" ]; then
      echo "package.sh: $bins/$b is missing: run \`cargo build -p gatehouse-daemon --bins\` first" >&2
      exit 1
    fi
  done
  # cargo-deb maps the assets' target/release/ paths to the profile's directory
  deb_args=(--profile dev --fast -o "$target/debian-debug")
fi
# generated assets, from the binary itself (the asset list reads them from
# target/package/)
rm -rf target/package
mkdir -p target/package/man target/package/completions
"$bins/gatehouse" man target/package/man
"$bins/gatehouse" completions bash > target/package/completions/gatehouse
"$bins/gatehouse" completions zsh > target/package/completions/_gatehouse
"$bins/gatehouse" completions fish > target/package/completions/gatehouse.fish
gzip -9n target/package/man/*.1
mkdir -p "${deb_args[-1]}"
cargo deb --no-build --locked -p gatehouse-daemon "${deb_args[@]}" >&2
ls -t "${deb_args[-1]}"/gatehouse_*.deb | head -n1
