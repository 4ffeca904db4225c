#!/bin/bash
# The whole test suite, from a fresh clone: installs what the tests need,
# builds every binary the end-to-end tests start, runs unit, end-to-end and
# doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --workspace --locked
cargo nextest run --workspace --locked --no-fail-fast
cargo test --workspace --doc --locked
