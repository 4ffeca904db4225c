# Sourced by the nginx peer's scripts (not run on its own).
#
# Settings (environment):
#   GH_PEERS_RUN   parent of all peer state   default /tmp/gatehouse-peers
# Instance NAME keeps its state in $GH_PEERS_RUN/nginx/NAME/, its lock is $GH_PEERS_RUN/nginx/NAME.lock.
#
# Defines: NGINX_HOME (this folder), PEERS_RUN, NGINX_RUN (= $PEERS_RUN/nginx) and the helpers below;
# set_instance NAME defines NAME, RUN, LOCK, CONF, NGINX_PIDFILE, APP_PIDFILE, APP_SOCK, PORTFILE,
# AUTHFILE.

NGINX_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PATH=/usr/sbin:/sbin:$PATH   # Debian's nginx is /usr/sbin/nginx

PEERS_RUN=${GH_PEERS_RUN:-/tmp/gatehouse-peers}
case $PEERS_RUN in /*) ;; *) PEERS_RUN=$PWD/$PEERS_RUN ;; esac
while [ "${PEERS_RUN%/}" != "$PEERS_RUN" ]; do PEERS_RUN=${PEERS_RUN%/}; done
if [ -z "$PEERS_RUN" ]; then echo "nginx: GH_PEERS_RUN must not be /" >&2; exit 1; fi
# these paths end up inside nginx.conf
case $PEERS_RUN in
  *[!A-Za-z0-9._/+@=,-]*) echo "nginx: GH_PEERS_RUN may only hold letters, digits and . _ / + @ = , -: $PEERS_RUN" >&2; exit 1 ;;
esac
NGINX_RUN=$PEERS_RUN/nginx

# set_instance NAME: checks the name (letters, digits, . _ -; not starting with . or -) and sets the paths
set_instance() {
  case $1 in
    ''|[.-]*|*[!A-Za-z0-9._-]*) echo "nginx: bad instance name '$1' (letters, digits, '.', '_', '-')" >&2; exit 2 ;;
  esac
  NAME=$1
  RUN=$NGINX_RUN/$NAME
  # next to the run dir, not in it, so that `stop.sh --wipe` can delete the run dir while others wait
  LOCK=$NGINX_RUN/$NAME.lock
  CONF=$RUN/nginx.conf
  NGINX_PIDFILE=$RUN/nginx.pid   # written (and removed) by nginx itself
  APP_PIDFILE=$RUN/app.pid       # written by app.py once it listens
  APP_SOCK=$RUN/app.sock
  PORTFILE=$RUN/port
  AUTHFILE=$RUN/auth_socket
  if [ "${#APP_SOCK}" -gt 107 ]; then
    echo "nginx: the app's socket path $APP_SOCK is too long for a Unix socket; use a shorter GH_PEERS_RUN" >&2
    exit 1
  fi
}

# check_port PORT
check_port() {
  case $1 in ''|0*|*[!0-9]*) echo "nginx: bad port '$1'" >&2; exit 2 ;; esac
  if [ "$1" -gt 65535 ]; then echo "nginx: bad port '$1'" >&2; exit 2; fi
}

# check_auth_socket PATH: absolute, short enough for sun_path, and nothing nginx.conf would trip over
# (no ':' either: it ends the socket path in proxy_pass http://unix:PATH:/uri)
check_auth_socket() {
  case $1 in
    /*) ;;
    *) echo "nginx: AUTH_SOCKET must be an absolute path: '$1'" >&2; exit 2 ;;
  esac
  case $1 in
    *[!A-Za-z0-9._/+@=,-]*)
      echo "nginx: AUTH_SOCKET may only hold letters, digits and . _ / + @ = , -: '$1'" >&2; exit 2 ;;
  esac
  if [ "${#1}" -gt 107 ]; then echo "nginx: AUTH_SOCKET is longer than a Unix socket path can be: '$1'" >&2; exit 2; fi
}

need_tools() {
  local cmd
  for cmd in nginx python3 curl flock setsid; do
    command -v "$cmd" >/dev/null || { echo "nginx: $cmd not found; run tests/peers/install.sh as root" >&2; exit 1; }
  done
}

# take_lock: serialise start/stop of this instance. fd 9 stays open until the script exits; anything
# started in the background must close it.
take_lock() {
  mkdir -p "$NGINX_RUN"
  exec 9>>"$LOCK"
  if ! flock -w 120 9; then echo "nginx: timed out waiting for $LOCK" >&2; exit 1; fi
}

# is_zombie PID: exited but not reaped yet (kill -0 still succeeds on it)
is_zombie() {
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [ "${st%% *}" = Z ]
}

# live_pid PIDFILE NEEDLE: prints the pid in PIDFILE if that process is alive and its command line
# contains NEEDLE
live_pid() {
  local p
  [ -s "$1" ] || return 1
  p=$(cat "$1" 2>/dev/null) || return 1
  case $p in ''|*[!0-9]*) return 1 ;; esac
  kill -0 "$p" 2>/dev/null || return 1
  is_zombie "$p" && return 1
  tr '\0' ' ' 2>/dev/null < "/proc/$p/cmdline" | grep -qF -- "$2" || return 1
  echo "$p"
}
# the nginx master renames itself "nginx: master process nginx ... -c CONF", which keeps the -c argument
nginx_pid() { live_pid "$NGINX_PIDFILE" "-c $CONF"; }
app_pid() { live_pid "$APP_PIDFILE" "$NGINX_HOME/app.py --socket $APP_SOCK"; }

# session_pids SID: the pids of every process in session SID (the nginx master is a session leader, so
# this finds its workers too, even after the master is gone)
session_pids() {
  local f st
  for f in /proc/[0-9]*/stat; do
    st=$(cat "$f" 2>/dev/null) || continue
    st=${st##*) }
    # after ") ": state ppid pgrp session ...
    set -- $st
    [ "${4:-}" = "$SID_WANTED" ] || continue
    f=${f#/proc/}
    echo "${f%/stat}"
  done
}

# kill_pid PID [WHAT]: SIGTERM, wait up to 5 s, then SIGKILL
kill_pid() {
  local p=$1 what=${2:-process} i
  gone() { ! kill -0 "$p" 2>/dev/null || is_zombie "$p"; }
  kill "$p" 2>/dev/null || return 0
  for i in $(seq 1 100); do gone && return 0; sleep 0.05; done
  echo "nginx: $what $p did not exit after SIGTERM; sending SIGKILL" >&2
  kill -9 "$p" 2>/dev/null || true
  for i in $(seq 1 20); do gone && return 0; sleep 0.1; done
}

# kill_nginx PID: stops the master (SIGTERM: fast shutdown, it stops its workers), then anything left
# in its session (a worker that outlived a killed master)
kill_nginx() {
  local p=$1 q
  kill_pid "$p" "nginx master"
  SID_WANTED=$p
  for q in $(session_pids); do kill_pid "$q" "nginx worker"; done
}

port_taken() { (exec 5<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# app_answers: the app on $APP_SOCK answers a GET the way app.py does
app_answers() {
  local b
  b=$(curl -fsS --max-time 3 --unix-socket "$APP_SOCK" "http://app/gatehouse-peer-ping?x=1" 2>/dev/null) || return 1
  [ "$b" = "app: uri=/gatehouse-peer-ping?x=1 user= scopes=" ]
}

# nginx_answers PORT AUTH_SOCKET: nginx on PORT is this instance, running with the config for AUTH_SOCKET
# (/healthz carries an X-Gatehouse-Peer header naming both)
nginx_answers() {
  local h
  h=$(curl -fsS --max-time 3 -o /dev/null -w '%header{x-gatehouse-peer}' "http://127.0.0.1:$1/healthz" 2>/dev/null) \
    || return 1
  [ "$h" = "nginx $NAME auth=unix:$2" ]
}

# render TEMPLATE OUT NAME=VALUE...: replaces @NAME@ in TEMPLATE, writes OUT; fails on a leftover placeholder
render() {
  local src=$1 out=$2 kv args=()
  shift 2
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$src" > "$out.tmp"
  if grep -n '@[A-Z][A-Z0-9_]*@' "$out.tmp" >&2; then
    echo "nginx: placeholder left in $out (from $src)" >&2; rm -f "$out.tmp"; exit 1
  fi
  mv -f "$out.tmp" "$out"
}

# spawn LOG CMD...: runs CMD in its own session (the caller's Ctrl-C or process-group kill does not reach
# it), with every inherited descriptor above 2 closed first: one of them may be the caller's stdout (a
# caller reading it to EOF, like Rust's Command::output(), would otherwise wait for the daemon to exit),
# fd 9 is the lock. stdin is /dev/null, stdout and stderr go to LOG. Sets SPAWNED to its pid.
spawn() {
  local log=$1
  shift
  (
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
    done
    exec setsid "$@"
  ) </dev/null >>"$log" 2>&1 &
  SPAWNED=$!
}
