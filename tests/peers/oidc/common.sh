# Sourced by the OIDC peer's scripts (not run on its own).
#
# Settings (environment):
#   GH_PEERS_RUN   parent of all peer state   default /tmp/gatehouse-peers
# Instance NAME keeps its state in $GH_PEERS_RUN/oidc/NAME/, its lock is $GH_PEERS_RUN/oidc/NAME.lock.
#
# Defines: OIDC_HOME (this folder), PEERS_RUN, OIDC_RUN (= $PEERS_RUN/oidc) and the helpers below;
# set_instance NAME defines NAME, RUN, LOCK, PIDFILE, LOG, KEYS, PORTFILE, SCHEMEFILE, TLS, CA.

OIDC_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

PEERS_RUN=${GH_PEERS_RUN:-/tmp/gatehouse-peers}
case $PEERS_RUN in /*) ;; *) PEERS_RUN=$PWD/$PEERS_RUN ;; esac
while [ "${PEERS_RUN%/}" != "$PEERS_RUN" ]; do PEERS_RUN=${PEERS_RUN%/}; done
if [ -z "$PEERS_RUN" ]; then echo "oidc: GH_PEERS_RUN must not be /" >&2; exit 1; fi
OIDC_RUN=$PEERS_RUN/oidc

# set_instance NAME: checks the name (letters, digits, . _ -; not starting with . or -) and sets the paths
set_instance() {
  case $1 in
    ''|[.-]*|*[!A-Za-z0-9._-]*) echo "oidc: bad instance name '$1' (letters, digits, '.', '_', '-')" >&2; exit 2 ;;
  esac
  NAME=$1
  RUN=$OIDC_RUN/$NAME
  # next to the run dir, not in it, so that `stop.sh --wipe` can delete the run dir while others wait
  LOCK=$OIDC_RUN/$NAME.lock
  PIDFILE=$RUN/server.pid
  LOG=$RUN/server.log
  KEYS=$RUN/jwks.private.json
  PORTFILE=$RUN/port
  # http or https (start.sh --tls); no file = http
  SCHEMEFILE=$RUN/scheme
  # an https instance's test CA and server certificate (make_tls)
  TLS=$RUN/tls
  CA=$TLS/ca.pem
}

# check_port PORT
check_port() {
  case $1 in ''|0*|*[!0-9]*) echo "oidc: bad port '$1'" >&2; exit 2 ;; esac
  if [ "$1" -gt 65535 ]; then echo "oidc: bad port '$1'" >&2; exit 2; fi
}

# scheme_of: this instance's scheme as start.sh recorded it: https, or http (also when none is recorded)
scheme_of() {
  local s=
  [ -f "$SCHEMEFILE" ] && read -r s < "$SCHEMEFILE"
  case $s in https) echo https ;; *) echo http ;; esac
}

# issuer_of PORT: this instance's issuer on PORT, with the instance's scheme
issuer_of() { echo "$(scheme_of)://127.0.0.1:$1"; }

# make_tls: makes sure that $TLS holds a test CA (ca.pem, ca.key) and a server certificate signed by it
# (server.pem, server.key; SAN IP:127.0.0.1 and DNS:localhost; EKU serverAuth) that is valid for one more
# day at least; otherwise makes new ones, a new CA included. EC P-256 keys, ECDSA-SHA256, 30 days, X.509 v3.
# The caller holds the lock.
make_tls() {
  local tmp=$RUN/tls.new
  command -v openssl >/dev/null || { echo "oidc: openssl not found; run tests/peers/install.sh" >&2; exit 1; }
  if [ -s "$TLS/ca.key" ] && [ -s "$TLS/server.key" ] \
    && openssl verify -purpose sslserver -CAfile "$CA" "$TLS/server.pem" >/dev/null 2>&1 \
    && openssl x509 -checkend 86400 -noout -in "$TLS/server.pem" >/dev/null 2>&1; then
    return 0
  fi
  rm -rf "$tmp" "$tmp.log"
  mkdir -p "$RUN"
  if ! (
    set -e
    umask 077
    mkdir "$tmp"
    cd "$tmp"
    # own config, so that nothing comes from the system's openssl.cnf
    printf '%s\n' '[req]' 'distinguished_name = dn' 'prompt = no' '[dn]' 'CN = unused' \
      '[ca_ext]' 'basicConstraints = critical, CA:TRUE' 'keyUsage = critical, keyCertSign, cRLSign' \
      'subjectKeyIdentifier = hash' \
      '[server_ext]' 'basicConstraints = critical, CA:FALSE' 'keyUsage = critical, digitalSignature' \
      'extendedKeyUsage = serverAuth' 'subjectAltName = IP:127.0.0.1, DNS:localhost' \
      'subjectKeyIdentifier = hash' 'authorityKeyIdentifier = keyid' > openssl.cnf
    openssl req -x509 -config openssl.cnf -extensions ca_ext -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
      -nodes -keyout ca.key -out ca.pem -sha256 -days 30 -set_serial "0x1$(openssl rand -hex 15)" \
      -subj "/O=gatehouse tests/CN=gatehouse test CA (oidc $NAME)"
    openssl req -new -config openssl.cnf -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout server.key -out server.csr -subj "/O=gatehouse tests/CN=127.0.0.1"
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial "0x1$(openssl rand -hex 15)" \
      -sha256 -days 30 -extfile openssl.cnf -extensions server_ext -out server.pem
    openssl verify -purpose sslserver -CAfile ca.pem server.pem
    rm openssl.cnf server.csr
    chmod 644 ca.pem server.pem
  ) > "$tmp.log" 2>&1; then
    echo "oidc: making the test CA and server certificate of $NAME failed; last lines of openssl's output:" >&2
    tail -n 15 "$tmp.log" >&2
    rm -rf "$tmp" "$tmp.log"
    exit 1
  fi
  rm -rf "$TLS" "$tmp.log"
  mv "$tmp" "$TLS"
  echo "oidc: new test CA and server certificate for $NAME in $TLS" >&2
}

# need_node: node >= 20 and the npm packages are there
need_node() {
  local v
  v=$(node -v 2>/dev/null) || { echo "oidc: node not found; install Node.js 20 or newer, then run tests/peers/install.sh" >&2; exit 1; }
  v=${v#v}
  if [ "${v%%.*}" -lt 20 ] 2>/dev/null; then echo "oidc: node $v is too old; oidc-provider 9 needs Node.js 20 or newer" >&2; exit 1; fi
  [ -f "$OIDC_HOME/node_modules/oidc-provider/package.json" ] && [ -f "$OIDC_HOME/node_modules/jose/package.json" ] \
    || { echo "oidc: npm packages missing in $OIDC_HOME/node_modules; run tests/peers/install.sh" >&2; exit 1; }
  command -v curl >/dev/null || { echo "oidc: curl not found" >&2; exit 1; }
}

# take_lock [-s]: serialise start/stop/rotate of this instance (token.sh takes it shared). fd 9 stays open
# until the script exits; anything started in the background must close it.
take_lock() {
  mkdir -p "$OIDC_RUN"
  exec 9>>"$LOCK"
  if ! flock "$@" -w 120 9; then echo "oidc: timed out waiting for $LOCK" >&2; exit 1; fi
}

# is_zombie PID: exited but not reaped yet (kill -0 still succeeds on it)
is_zombie() {
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [ "${st%% *}" = Z ]
}

# server_pid: prints the pid from the pid file if that process is alive and is this instance's server
server_pid() {
  local p
  [ -s "$PIDFILE" ] || return 1
  p=$(cat "$PIDFILE" 2>/dev/null) || return 1
  case $p in ''|*[!0-9]*) return 1 ;; esac
  kill -0 "$p" 2>/dev/null || return 1
  is_zombie "$p" && return 1
  tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$OIDC_HOME/server.mjs --name $NAME " || return 1
  echo "$p"
}

# answers PORT: the provider on PORT serves discovery for issuer SCHEME://127.0.0.1:PORT, as this instance
# (over https: with a certificate that this instance's CA vouches for; curl trusts no other CA then)
answers() {
  local d issuer trust=()
  issuer=$(issuer_of "$1")
  case $issuer in https:*) trust=(--cacert "$CA") ;; esac
  d=$(curl -fsS --max-time 3 "${trust[@]}" "$issuer/.well-known/openid-configuration" 2>/dev/null) || return 1
  case $d in *"\"issuer\":\"$issuer\""*) ;; *) return 1 ;; esac
  case $d in *"\"gatehouse_test_instance\":\"$NAME\""*) ;; *) return 1 ;; esac
}

port_taken() { (exec 5<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# kill_server PID: SIGTERM, wait up to 5 s, then SIGKILL
kill_server() {
  local p=$1 i
  gone() { ! kill -0 "$p" 2>/dev/null || is_zombie "$p"; }
  kill "$p" 2>/dev/null || return 0
  for i in $(seq 1 100); do gone && return 0; sleep 0.05; done
  echo "oidc: server $p did not exit after SIGTERM; sending SIGKILL" >&2
  kill -9 "$p" 2>/dev/null || true
  for i in $(seq 1 20); do gone && return 0; sleep 0.1; done
}

# launch PORT: starts this instance's server on PORT (keys in $KEYS must exist) with the instance's scheme
# (https: with the certificate in $TLS, made here when missing or about to expire) and waits until it
# answers. The caller holds the lock and has made sure that no server of this instance runs.
launch() {
  local port=$1 spawned up=0 i tls=()
  if port_taken "$port"; then
    echo "oidc: 127.0.0.1:$port is already in use by another process (not instance $NAME); pick another port" >&2
    exit 1
  fi
  if [ "$(scheme_of)" = https ]; then
    make_tls
    tls=(--tls "$TLS")
  fi
  rm -f "$PIDFILE"
  echo "=== $(date '+%F %T') starting instance $NAME on $(issuer_of "$port")" >> "$LOG"
  # In its own session (the caller's Ctrl-C or process-group kill does not reach it), with every inherited
  # descriptor above 2 closed first: one of them may be the caller's stdout (a caller reading it to EOF,
  # like Rust's Command::output(), would otherwise wait for the server to exit), fd 9 is the lock.
  (
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
    done
    exec setsid node "$OIDC_HOME/server.mjs" --name "$NAME" --port "$port" --keys "$KEYS" --pidfile "$PIDFILE" "${tls[@]}"
  ) </dev/null >>"$LOG" 2>&1 &
  spawned=$!
  for i in $(seq 1 300); do
    if [ -s "$PIDFILE" ] && answers "$port"; then up=1; break; fi
    kill -0 "$spawned" 2>/dev/null || break
    sleep 0.05
  done
  if [ "$up" != 1 ]; then
    echo "oidc: instance $NAME did not come up on $(issuer_of "$port"); last lines of $LOG:" >&2
    tail -n 15 "$LOG" >&2
    kill_server "$spawned"
    rm -f "$PIDFILE"
    exit 1
  fi
}
