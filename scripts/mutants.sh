#!/bin/bash
# Mutation testing of the security-critical code with cargo-mutants: each
# mutant (an operator flipped, a return value replaced, …) must make some
# test fail. Prints cargo-mutants' summary; the caught/missed/unviable lists
# land in mutants.out/ (not committed). Record the table in docs/mutants.md.
#   scripts/mutants.sh            every file below
#   scripts/mutants.sh FILE...    only these (paths as below)
# Slow: every mutant rebuilds the crate and runs its tests. Needs the peers
# (slapd, oidc-provider, nginx) the e2e tests start; scripts/setup.sh
# installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo mutants --version >/dev/null 2>&1 || cargo install --locked cargo-mutants
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  files=(
    plugins/jwt/src/lib.rs plugins/jwt/src/cache.rs
    sdk/src/jose/jws.rs sdk/src/jose/keys.rs sdk/src/jose/issuer.rs
    daemon/src/lockout.rs daemon/src/maps.rs daemon/src/access.rs
    daemon/src/verifiers/static_object.rs daemon/src/api/check.rs
    daemon/src/authn/username.rs sdk/src/redact.rs
  )
fi
args=()
for f in "${files[@]}"; do
  [ -f "$f" ] && args+=(--file "$f")
done
# the binaries the e2e tests start must match each mutant: build them in
# the test run itself (cargo-mutants builds the workspace per mutant)
exec cargo mutants --workspace --no-shuffle --test-tool nextest "${args[@]}" \
  --timeout-multiplier 3 -- --no-fail-fast
