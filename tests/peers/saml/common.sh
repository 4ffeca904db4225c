# Sourced by the SAML peer's scripts (not run on its own).
#
# One SimpleSAMLphp 1.19 IdP (Debian package, code in /usr/share/simplesamlphp) shared by every test
# process, served by PHP's built-in web server on 127.0.0.1.
#
# Settings (environment):
#   GH_PEERS_RUN   parent of all peer state   default /tmp/gatehouse-peers
# State in $GH_PEERS_RUN/saml/: config/ (rendered), metadata/ (the hosted IdP), sp/ (service providers:
# one SAML metadata XML file each, read at every request, so a test registers its SP by writing a file),
# cert/idp.{key,crt} (generated on first start, kept until stop.sh --wipe), sessions/, tmp/, data/, logs,
# server.pid, port. The lock is $GH_PEERS_RUN/saml.lock.

SAML_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PEERS_RUN=${GH_PEERS_RUN:-/tmp/gatehouse-peers}
case $PEERS_RUN in /*) ;; *) PEERS_RUN=$PWD/$PEERS_RUN ;; esac
while [ "${PEERS_RUN%/}" != "$PEERS_RUN" ]; do PEERS_RUN=${PEERS_RUN%/}; done
if [ -z "$PEERS_RUN" ]; then echo "saml: GH_PEERS_RUN must not be /" >&2; exit 1; fi
# these paths end up inside PHP strings and sed replacements
case $PEERS_RUN in
  *[!A-Za-z0-9._/+@=,-]*) echo "saml: GH_PEERS_RUN may only hold letters, digits and . _ / + @ = , -: $PEERS_RUN" >&2; exit 1 ;;
esac
RUN=$PEERS_RUN/saml
LOCK=$PEERS_RUN/saml.lock
PIDFILE=$RUN/server.pid

# render TEMPLATE OUTPUT NAME=VALUE...: replaces each @NAME@; fails if a placeholder is left over
render() {
  local src=$1 dst=$2 kv args=()
  shift 2
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$src" > "$dst.tmp"
  if grep -n '@[A-Z][A-Z0-9_]*@' "$dst.tmp" >&2; then
    echo "saml: unreplaced placeholder in $dst" >&2; rm -f "$dst.tmp"; return 1
  fi
  mv "$dst.tmp" "$dst"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

take_lock() {
  mkdir -p "$PEERS_RUN"
  exec 9>>"$LOCK"
  if ! flock -w 120 9; then echo "saml: timed out waiting for $LOCK" >&2; exit 1; fi
}
