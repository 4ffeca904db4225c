#!/bin/bash
# Builds release binaries and runs the benchmarks; prints figures (see
# docs/benchmarks.md for recorded ones).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace
cargo bench -p gatehouse-e2e --bench socket
cargo bench -p gatehouse-e2e --bench plugin_modes
