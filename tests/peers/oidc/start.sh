#!/bin/bash
# tests/peers/oidc/start.sh NAME PORT [--tls]
# Starts OpenID provider instance NAME on 127.0.0.1:PORT (or finds it already running) and prints, on stdout
# and nothing else there:
#   GH_OIDC_ISSUER=http://127.0.0.1:PORT
# With --tls the instance serves HTTPS instead, and start.sh prints
#   GH_OIDC_ISSUER=https://127.0.0.1:PORT
#   GH_OIDC_CA=/abs/path/to/ca.pem      (the instance's own test CA, the only one that vouches for it)
# Progress and errors go to stderr. Exit status 0 only when the instance answers as that issuer.
#
# Safe to run again and from several processes at once: a flock on $GH_PEERS_RUN/oidc/NAME.lock
# serialises the callers of one instance, and an instance that is up and answering is left alone.
# An instance that runs on another port than PORT, or with another scheme, is an error (stop.sh NAME first).
# State in $GH_PEERS_RUN/oidc/NAME (default /tmp/gatehouse-peers/oidc/NAME): jwks.private.json (the
# signing keys, made on the first start, kept until rotate.sh or stop.sh --wipe), port, scheme (http or
# https), server.pid, server.log, and with --tls tls/ (ca.pem, ca.key, server.pem, server.key: made on the
# first start with --tls, kept until stop.sh --wipe, remade when about to expire).
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/common.sh"

if [ $# -lt 2 ] || [ $# -gt 3 ] || { [ $# = 3 ] && [ "$3" != --tls ]; }; then
  echo "usage: $0 NAME PORT [--tls]" >&2; exit 2
fi
set_instance "$1"
check_port "$2"
PORT=$2
SCHEME=http
if [ $# = 3 ]; then SCHEME=https; fi

# print_env: the lines for the caller
print_env() {
  echo "GH_OIDC_ISSUER=$(issuer_of "$PORT")" >&3
  if [ "$SCHEME" = https ]; then echo "GH_OIDC_CA=$CA" >&3; fi
}

exec 3>&1 1>&2   # fd 3 = the caller's stdout, for the env line only

need_node
take_lock

if pid=$(server_pid); then
  running=$(cat "$PORTFILE" 2>/dev/null || true)
  if [ "$running" != "$PORT" ]; then
    echo "oidc: instance $NAME already runs on port ${running:-?}, not $PORT; stop.sh $NAME first" >&2
    exit 1
  fi
  if [ "$(scheme_of)" != "$SCHEME" ]; then
    echo "oidc: instance $NAME already runs with $(scheme_of), not $SCHEME; stop.sh $NAME first" >&2
    exit 1
  fi
  for _ in $(seq 1 30); do
    if answers "$PORT"; then print_env; exit 0; fi
    sleep 0.1
  done
  echo "oidc: instance $NAME (pid $pid) is running but does not answer on $(issuer_of "$PORT"); restarting it" >&2
  kill_server "$pid"
fi

if port_taken "$PORT"; then
  echo "oidc: 127.0.0.1:$PORT is already in use by another process (not instance $NAME); pick another port" >&2
  exit 1
fi
mkdir -p "$RUN"
chmod 700 "$RUN"
if [ ! -s "$KEYS" ]; then
  kids=$(node "$OIDC_HOME/keys.mjs" new "$KEYS") || { echo "oidc: making keys for $NAME failed" >&2; exit 1; }
  echo "oidc: new keys for $NAME:" $kids >&2
fi
echo "$PORT" > "$PORTFILE"
echo "$SCHEME" > "$SCHEMEFILE"

launch "$PORT"
echo "oidc: instance $NAME up on $(issuer_of "$PORT"), pid $(cat "$PIDFILE") (log $LOG)" >&2
print_env
