# Sourced by scripts/setup.sh and scripts/dev.sh: stops with instructions
# when cargo is missing or older than the workspace's rust-version.
require_rust() {
  local want have
  want=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
  if ! have=$(cargo --version 2>/dev/null); then
    echo "$1: Rust $want or newer is required and cargo was not found." >&2
    echo "$1: install it with rustup (https://rustup.rs), as the user who builds:" >&2
    echo "$1:   curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt" >&2
    echo "$1: then open a new shell (or: . \"\$HOME/.cargo/env\") and run me again." >&2
    exit 1
  fi
  have=$(echo "$have" | cut -d' ' -f2 | cut -d- -f1)
  if [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n1)" != "$want" ]; then
    echo "$1: Rust $want or newer is required; cargo is $have: run 'rustup update stable'." >&2
    exit 1
  fi
  if ! command -v cc >/dev/null; then
    echo "$1: a C compiler is required (aws-lc and SQLite are built from C): apt-get install gcc libc6-dev pkg-config (scripts/setup.sh does)" >&2
    exit 1
  fi
}
