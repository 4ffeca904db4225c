# Sourced by the RADIUS peer's scripts (not run on its own).
#
# Settings (environment):
#   GH_PEERS_RUN   parent of all peer state   default /tmp/gatehouse-peers
# Instance NAME keeps its state in $GH_PEERS_RUN/radius/NAME/ and its lock is $GH_PEERS_RUN/radius/NAME.lock.
#
# Defines: RADIUS_HOME (this folder), PEERS_RUN, RADIUS_RUN (= $PEERS_RUN/radius), SECRET and the helpers
# below; set_instance NAME defines NAME, RUN, LOCK, PIDFILE, PORTFILE, LOG.

RADIUS_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PATH=/usr/sbin:/sbin:$PATH   # Debian's freeradius is /usr/sbin/freeradius

PEERS_RUN=${GH_PEERS_RUN:-/tmp/gatehouse-peers}
case $PEERS_RUN in /*) ;; *) PEERS_RUN=$PWD/$PEERS_RUN ;; esac
while [ "${PEERS_RUN%/}" != "$PEERS_RUN" ]; do PEERS_RUN=${PEERS_RUN%/}; done
if [ -z "$PEERS_RUN" ]; then echo "radius: GH_PEERS_RUN must not be /" >&2; exit 1; fi
# these paths end up inside radiusd.conf and in sed replacements
case $PEERS_RUN in
  *[!A-Za-z0-9._/+@=,-]*) echo "radius: GH_PEERS_RUN may only hold letters, digits and . _ / + @ = , -: $PEERS_RUN" >&2; exit 1 ;;
esac
RADIUS_RUN=$PEERS_RUN/radius
# The shared secret of the one client (127.0.0.1) every instance knows.
SECRET=radsecret

# set_instance NAME: checks the name and sets the paths
set_instance() {
  case $1 in
    ''|[.-]*|*[!A-Za-z0-9._-]*) echo "radius: bad instance name '$1' (letters, digits, '.', '_', '-')" >&2; exit 2 ;;
  esac
  NAME=$1
  RUN=$RADIUS_RUN/$NAME
  # next to the run dir, not in it, so that `stop.sh --wipe` can delete the run dir while others wait
  LOCK=$RADIUS_RUN/$NAME.lock
  PIDFILE=$RUN/radiusd.pid
  PORTFILE=$RUN/port
  LOG=$RUN/radius.log
}

# check_port PORT
check_port() {
  case $1 in ''|0*|*[!0-9]*) echo "radius: bad port '$1'" >&2; exit 2 ;; esac
  if [ "$1" -gt 65534 ]; then echo "radius: bad port '$1' (the next one is the accounting port)" >&2; exit 2; fi
}

need_tools() {
  local cmd
  for cmd in freeradius radclient flock setsid; do
    command -v "$cmd" >/dev/null || { echo "radius: $cmd not found; run tests/peers/install.sh as root" >&2; exit 1; }
  done
}

# take_lock: serialise start/stop of this instance (fd 9 stays open until the script exits; anything
# started in the background must close it)
take_lock() {
  mkdir -p "$RADIUS_RUN"
  exec 9>>"$LOCK"
  if ! flock -w 120 9; then echo "radius: timed out waiting for $LOCK" >&2; exit 1; fi
}

# is_zombie PID: exited but not reaped yet (kill -0 still succeeds on it)
is_zombie() {
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [ "${st%% *}" = Z ]
}

# server_pid: the pid from the pid file if that process is alive and is a freeradius
server_pid() {
  local p
  [ -s "$PIDFILE" ] || return 1
  p=$(cat "$PIDFILE" 2>/dev/null) || return 1
  case $p in ''|*[!0-9]*) return 1 ;; esac
  kill -0 "$p" 2>/dev/null || return 1
  case $(cat "/proc/$p/comm" 2>/dev/null) in freeradius|radiusd) ;; *) return 1 ;; esac
  is_zombie "$p" && return 1
  echo "$p"
}

# answers PORT: the server answers a Status-Server (signed with a Message-Authenticator) on 127.0.0.1:PORT
answers() {
  echo "Message-Authenticator = 0x00" | timeout 5 radclient -q -t 1 -r 1 "127.0.0.1:$1" status "$SECRET" >/dev/null 2>&1
}

# port_taken PORT: something already holds UDP 127.0.0.1:PORT
port_taken() {
  ss -Hlun "sport = :$1" 2>/dev/null | grep -q .
}

# kill_server PID: SIGTERM, wait up to 10 s, then SIGKILL
kill_server() {
  local p=$1 i
  gone() { ! kill -0 "$p" 2>/dev/null || is_zombie "$p"; }
  kill "$p" 2>/dev/null || return 0
  for i in $(seq 1 100); do gone && return 0; sleep 0.1; done
  echo "radius: freeradius $p did not exit after SIGTERM; sending SIGKILL" >&2
  kill -9 "$p" 2>/dev/null || true
  for i in $(seq 1 20); do gone && return 0; sleep 0.1; done
}

print_env() {
  printf 'GH_RADIUS_ADDR=127.0.0.1:%s\nGH_RADIUS_SECRET=%s\nGH_RADIUS_LOG=%s\n' "$1" "$SECRET" "$LOG"
}
