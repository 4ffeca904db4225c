#!/bin/bash
# Mutation testing of the security-critical code with cargo-mutants: each
# mutant (an operator flipped, a return value replaced, …) must make some
# test fail. Prints cargo-mutants' summary per group; the caught/missed/
# unviable lists land in mutants.out/<group>/mutants.out/ (not committed). Record the
# table in docs/mutants.md.
#   scripts/mutants.sh                every group below
#   scripts/mutants.sh GROUP...       only these (jwt jose daemon check redact issuer radius tacacs oidc github saml paths host)
#   MUTANTS_ARGS='--re evict' scripts/mutants.sh daemon   extra cargo-mutants options
# Slow: every mutant rebuilds its crate and runs its package's tests (one
# mutant at a time: the CPU is shared). The `check` group runs end-to-end
# tests: it needs the peers scripts/setup.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null 2>&1 || cargo install --locked cargo-mutants
real_cargo=$(command -v cargo)

# Each group: the files, and the tests that judge them.
declare -A files=(
  [jwt]="plugins/jwt/src/lib.rs plugins/jwt/src/cache.rs"
  [jose]="sdk/src/jose/jws.rs sdk/src/jose/keys.rs sdk/src/jose/issuer.rs"
  [daemon]="daemon/src/lockout.rs daemon/src/verifiers/static_object.rs daemon/src/maps.rs
            daemon/src/maps/config.rs daemon/src/access.rs daemon/src/api/check/routes.rs
            daemon/src/authn/username.rs"
  [check]="daemon/src/api/check.rs"
  [redact]="sdk/src/redact.rs"
  # the issuer (session 4; its keyring sealed in session 7) and the
  # plugins' checks
  [issuer]="daemon/src/issuer/entitlements.rs daemon/src/issuer/catalog.rs daemon/src/issuer/keys.rs
            daemon/src/issuer/seal.rs"
  [radius]="plugins/radius/src/packet.rs plugins/radius/src/client.rs"
  [tacacs]="plugins/tacacs/src/packet.rs plugins/tacacs/src/session.rs"
  [oidc]="plugins/oidc/src/protocol.rs plugins/oidc/src/claims.rs"
  [github]="plugins/github/src/api.rs"
  [saml]="plugins/saml/src/verify.rs plugins/saml/src/structure.rs plugins/saml/src/front.rs plugins/saml/src/dsig.rs plugins/saml/src/c14n.rs plugins/saml/src/xml.rs"
  # session 6: forward-auth path normalisation and the host
  # modules' socket exchange
  [paths]="daemon/src/api/check/path.rs"
  [host]="host/socket/src/lib.rs"
)
# the SDK's JOSE is behind a feature its own package does not enable;
# api/check.rs is exercised by the end-to-end tests only (tests/tests/check.rs
# and nginx.rs). cargo-mutants 27 runs its baseline on the mutated package
# whatever --test-package says (there: no test, so it stops), so this group
# skips the baseline (CI runs those tests unmutated) and sets the timeouts.
declare -A extra=(
  [jose]="--features jose"
  [check]="--test-package gatehouse-e2e --baseline skip --timeout 600 --build-timeout 1800"
)

groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(jwt jose daemon check redact issuer radius tacacs oidc github saml paths host)
for g in "${groups[@]}"; do
  [ -n "${files[$g]:-}" ] || { echo "unknown group $g (jwt jose daemon check redact issuer radius tacacs oidc github saml paths host)" >&2; exit 2; }
  args=()
  for f in ${files[$g]}; do
    [ -f "$f" ] || { echo "$f is missing: update scripts/mutants.sh" >&2; exit 2; }
    args+=(--file "$f")
  done
  env=()
  tests=()
  timeouts=(--timeout-multiplier 3)
  copy=true
  # small crates, or a target/ too big to copy per run: build afresh
  case $g in host | paths | issuer) copy=false ;; esac
  # the issuer's own unit tests judge it (the daemon's others take longer
  # and never reach it)
  if [ "$g" = issuer ]; then tests=(-- --lib -E 'test(issuer::)'); fi
  if [ "$g" = check ]; then
    # no baseline (see above), and a build of its own rather than a copy
    # of target/ (release and bench builds included, it is many GB)
    timeouts=()
    copy=false
    tests=(-- -E 'binary(check) | binary(nginx)')
    # The end-to-end tests start target/debug/gatehoused, which a test
    # build does not rebuild: build the binaries with each mutant first.
    wrapper=$(mktemp)
    printf '#!/bin/sh\nif [ "$1 $3" = "nextest --no-run" ]; then "%s" build --workspace --bins >&2 || exit 101; fi\nexec "%s" "$@"\n' \
      "$real_cargo" "$real_cargo" >"$wrapper"
    chmod +x "$wrapper"
    env=(CARGO="$wrapper")
  fi
  echo "== $g"
  mkdir -p mutants.out
  # scratch copies go to $TMPDIR (/tmp); target/ is copied so a mutant
  # rebuilds only what it touches (but for `check`)
  # shellcheck disable=SC2086
  env "${env[@]}" cargo-mutants mutants --no-shuffle --test-tool nextest --copy-target=$copy \
    "${timeouts[@]}" ${extra[$g]:-} ${MUTANTS_ARGS:-} "${args[@]}" -o "mutants.out/$g" \
    "${tests[@]}" || true
  if [ "$g" = check ]; then rm -f "$wrapper"; fi
done
