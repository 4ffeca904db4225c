# Sourced by start.sh and stop.sh (not run on its own).
#
# Settings (environment; the first argument of start.sh/stop.sh overrides the port):
#   GH_PEERS_RUN  parent of all peer state   default /tmp/gatehouse-peers
#   GH_PG_PORT    the cluster's TCP port     default 19430
#
# Each port is its own throwaway cluster in $PEERS_RUN/pg-<port>, so a test may stop and start one
# without disturbing the others. PostgreSQL refuses to run as root: as root it runs as the OS user
# $GH_PG_OS_USER (default postgres, made by the Debian package); otherwise as the caller.

PEERS_RUN=${GH_PEERS_RUN:-/tmp/gatehouse-peers}
case $PEERS_RUN in /*) ;; *) PEERS_RUN=$PWD/$PEERS_RUN ;; esac
while [ "${PEERS_RUN%/}" != "$PEERS_RUN" ]; do PEERS_RUN=${PEERS_RUN%/}; done
[ -n "$PEERS_RUN" ] || { echo "pg: GH_PEERS_RUN must not be /" >&2; exit 1; }
case $PEERS_RUN in
  *[[:space:]\"\'\\\|\&\#]*) echo "pg: GH_PEERS_RUN must not contain spaces, quotes, \\, |, & or #" >&2; exit 1 ;;
esac

PORT=${GH_PG_PORT:-19430}
case ${1:-} in ''|--*) ;; *) PORT=$1 ;; esac
case $PORT in ''|*[!0-9]*) echo "pg: bad port: '$PORT'" >&2; exit 1 ;; esac

RUN=$PEERS_RUN/pg-$PORT
LOCK=$PEERS_RUN/pg-$PORT.lock
# the superuser's password (a throwaway cluster on 127.0.0.1)
ADMIN_PW=gatehouse-pg-test

BIN=
for v in 17 16 15; do
  if [ -x "/usr/lib/postgresql/$v/bin/pg_ctl" ]; then BIN=/usr/lib/postgresql/$v/bin; break; fi
done
if [ -z "$BIN" ]; then
  echo "pg: no /usr/lib/postgresql/*/bin/pg_ctl; run tests/peers/install.sh as root" >&2; exit 1
fi

if [ "$(id -u)" = 0 ]; then
  OS_USER=${GH_PG_OS_USER:-postgres}
  AS=(runuser -u "$OS_USER" --)
else
  OS_USER=$(id -un)
  AS=()
fi

take_lock() {
  mkdir -p "$PEERS_RUN"
  exec 9>>"$LOCK"
  if ! flock -w 120 9; then echo "pg: timed out waiting for $LOCK" >&2; exit 1; fi
}

running() {
  [ -f "$RUN/data/postmaster.pid" ] && "${AS[@]}" "$BIN/pg_ctl" -D "$RUN/data" status >/dev/null 2>&1
}
