# Sourced by start.sh, stop.sh and check.sh (not run on its own).
#
# Settings (environment):
#   GH_PEERS_RUN   parent of all peer state           default /tmp/gatehouse-peers
#   GH_LDAP_PORT   plain LDAP port (StartTLS offered)  default 13389
#   GH_LDAPS_PORT  LDAP over TLS port                  default 16636
#
# Defines: LDAP_HOME (this folder), PEERS_RUN, RUN (= $PEERS_RUN/ldap), LOCK, PORT, TLSPORT, BASE,
# URI, URIS, PIDFILE, LOG, and the helpers below.

LDAP_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PATH=/usr/sbin:/sbin:$PATH   # slapd and slappasswd live in /usr/sbin

PEERS_RUN=${GH_PEERS_RUN:-/tmp/gatehouse-peers}
case $PEERS_RUN in /*) ;; *) PEERS_RUN=$PWD/$PEERS_RUN ;; esac
while [ "${PEERS_RUN%/}" != "$PEERS_RUN" ]; do PEERS_RUN=${PEERS_RUN%/}; done
if [ -z "$PEERS_RUN" ]; then echo "ldap: GH_PEERS_RUN must not be /" >&2; exit 1; fi
case $PEERS_RUN in
  *[[:space:]\"\'\\\|\&\#]*) echo "ldap: GH_PEERS_RUN must not contain spaces, quotes, \\, |, & or #: $PEERS_RUN" >&2; exit 1 ;;
esac

RUN=$PEERS_RUN/ldap
# The lock lives next to the run dir, not in it, so that `stop.sh --wipe` can delete the run dir while
# another process waits on the lock.
LOCK=$PEERS_RUN/ldap.lock
PORT=${GH_LDAP_PORT:-13389}
TLSPORT=${GH_LDAPS_PORT:-16636}
for _p in "$PORT" "$TLSPORT"; do
  case $_p in ''|*[!0-9]*) echo "ldap: bad port: '$_p'" >&2; exit 1 ;; esac
done
unset _p
BASE=dc=example,dc=test
ADMIN_DN=cn=admin,$BASE
ADMIN_PW=adminpass
URI=ldap://127.0.0.1:$PORT
URIS=ldaps://127.0.0.1:$TLSPORT
PIDFILE=$RUN/slapd.pid
LOG=$RUN/slapd.log

# take_lock: serialise start/stop across processes (fd 9 stays open until the script exits;
# anything started in the background must close it with 9>&-)
take_lock() {
  mkdir -p "$PEERS_RUN"
  exec 9>>"$LOCK"
  if ! flock -w 120 9; then echo "ldap: timed out waiting for $LOCK" >&2; exit 1; fi
}

# slapd_pid: prints the pid from the pid file if that process is alive and is a slapd
slapd_pid() {
  local p
  [ -s "$PIDFILE" ] || return 1
  p=$(cat "$PIDFILE" 2>/dev/null) || return 1
  case $p in ''|*[!0-9]*) return 1 ;; esac
  kill -0 "$p" 2>/dev/null || return 1
  [ "$(cat "/proc/$p/comm" 2>/dev/null)" = slapd ] || return 1
  is_zombie "$p" && return 1
  echo "$p"
}

# is_zombie PID: the process has exited but was not reaped yet (pid 1 here may be slow to reap
# orphans); kill -0 still succeeds on it
is_zombie() {
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [ "${st%% *}" = Z ]
}

# answers: the server on $URI answers a root DSE read and serves our suffix
answers() {
  timeout 5 ldapsearch -x -LLL -o nettimeout=3 -H "$URI" -s base -b "" namingContexts 2>/dev/null \
    | grep -qi "^namingContexts: $BASE\$"
}

# kill_slapd PID: SIGTERM, wait up to 10 s, then SIGKILL
kill_slapd() {
  local p=$1 i
  gone() { ! kill -0 "$p" 2>/dev/null || is_zombie "$p"; }
  kill "$p" 2>/dev/null || return 0
  for i in $(seq 1 100); do gone && return 0; sleep 0.1; done
  echo "ldap: slapd $p did not exit after SIGTERM; sending SIGKILL" >&2
  kill -9 "$p" 2>/dev/null || true
  for i in $(seq 1 20); do gone && return 0; sleep 0.1; done
}

print_env() {
  printf 'GH_LDAP_URI=%s\nGH_LDAPS_URI=%s\nGH_LDAP_CA=%s\nGH_LDAP_BASE=%s\n' "$URI" "$URIS" "$RUN/ca.pem" "$BASE"
}
