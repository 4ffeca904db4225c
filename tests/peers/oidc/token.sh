#!/bin/bash
# tests/peers/oidc/token.sh NAME [--alg RS256|ES256] [--aud AUDIENCE] [--scopes "a b c"] [--ttl SECONDS]
#                                [--sub SUBJECT] [--json]
# Prints one JWT access token issued and signed by running instance NAME (just the token, on stdout).
# Defaults: --alg RS256, --aud gitlab-ai-gateway, no scopes, --ttl 3600, sub = the client id
# (gatehouse-e2e). A --ttl of 0 or less gives a token that expired that many seconds ago (iat = nbf = now).
# --json prints the whole token response instead. The claims are listed in tests/peers/README.md.
# Takes the instance's lock shared, so it waits while start.sh, rotate.sh or stop.sh work on NAME.
# An https instance (start.sh --tls) is asked over https, trusting only that instance's test CA.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/common.sh"

if [ $# -lt 1 ]; then echo "usage: $0 NAME [--alg RS256|ES256] [--aud AUD] [--scopes 'a b'] [--ttl S] [--sub SUB] [--json]" >&2; exit 2; fi
set_instance "$1"
shift
PORT=$(cat "$PORTFILE" 2>/dev/null || true)
[ -n "$PORT" ] || { echo "oidc: instance $NAME was never started (start.sh $NAME PORT)" >&2; exit 1; }
take_lock -s
trust=()
if [ "$(scheme_of)" = https ]; then trust=(--ca "$CA"); fi
# exec keeps fd 9, and with it the shared lock, until node exits
exec node "$OIDC_HOME/token.mjs" --issuer "$(issuer_of "$PORT")" "${trust[@]}" "$@"
