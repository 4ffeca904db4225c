#!/bin/bash
# Builds the Debian package (cargo-deb): release binaries, systemd units,
# sysusers/tmpfiles snippets, the example configuration, man pages and shell
# completions. Prints the .deb's path on the last line.
#   scripts/package.sh            # target/debian/gatehouse_VERSION_ARCH.deb
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/require-rust.sh
require_rust package.sh
if ! cargo deb --version >/dev/null 2>&1; then
  echo "package.sh: installing cargo-deb" >&2
  cargo install --locked cargo-deb
fi
cargo build --release --locked -p gatehouse-daemon --bins
# generated assets, from the binary itself
rm -rf target/package
mkdir -p target/package/man target/package/completions
target/release/gatehouse man target/package/man
target/release/gatehouse completions bash > target/package/completions/gatehouse
target/release/gatehouse completions zsh > target/package/completions/_gatehouse
target/release/gatehouse completions fish > target/package/completions/gatehouse.fish
gzip -9n target/package/man/*.1
cargo deb --no-build --locked -p gatehouse-daemon >&2
ls -t target/debian/gatehouse_*.deb | head -n1
