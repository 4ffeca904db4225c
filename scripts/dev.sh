#!/bin/bash
# Runs the daemon in the foreground on the development configuration
# (etc/dev.toml): socket and state under run/ in the checkout, the local
# authenticator, SQLite. Ctrl-C stops it.
#   target/debug/gatehouse --socket run/gatehouse.sock status
#   echo 'a long password' | target/debug/gatehouse --socket run/gatehouse.sock user add alice
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace
exec target/debug/gatehoused --config etc/dev.toml "$@"
