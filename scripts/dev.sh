#!/bin/bash
# Runs the daemon in the foreground on the development configuration
# (etc/dev.toml): socket and state under run/ in the checkout, the local
# authenticator, SQLite. Ctrl-C stops it.
#   target/debug/gatehouse --socket run/gatehouse.sock status
#   echo 'a long password' | target/debug/gatehouse --socket run/gatehouse.sock user add alice
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/require-rust.sh
require_rust dev.sh
# the daemon only; plugin libraries are not needed to run etc/dev.toml
cargo build -p gatehouse-daemon --bins
exec target/debug/gatehoused --config etc/dev.toml "$@"
