#!/bin/bash
# Starts gatehouse's private OpenLDAP test server (or finds it already running) and prints, on stdout and
# nothing else there:
#   GH_LDAP_URI=ldap://127.0.0.1:<port>        (StartTLS offered)
#   GH_LDAPS_URI=ldaps://127.0.0.1:<tlsport>
#   GH_LDAP_CA=<run dir>/ca.pem                (the throwaway CA that signed the server certificate)
#   GH_LDAP_BASE=dc=example,dc=test
# Progress and errors go to stderr. Exit status 0 only when the server answers.
#
# Safe to run again and from several processes at once: a flock on $GH_PEERS_RUN/ldap.lock serialises
# callers, and a server that is up and answering is left alone.
# State in $GH_PEERS_RUN/ldap (default /tmp/gatehouse-peers/ldap): slapd.conf, slapd.pid, slapd.log,
# data/ (the database), ca.pem/ca.key/server.pem/server.key, directory.ldif (as loaded), loaded (marker).
# First start: makes the certificates, starts slapd, then loads directory.ldif.in through the running server
# (so the memberOf overlay fills in memberOf). `stop.sh --wipe` resets everything.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/common.sh"

exec 3>&1 1>&2   # fd 3 = the caller's stdout, for the env lines only

for cmd in slapd slaptest slappasswd ldapsearch ldapmodify openssl flock setsid timeout; do
  command -v "$cmd" >/dev/null || { echo "ldap: $cmd not found; run tests/peers/install.sh as root" >&2; exit 1; }
done

take_lock

if pid=$(slapd_pid); then
  for _ in $(seq 1 30); do
    if answers; then print_env >&3; exit 0; fi
    sleep 0.1
  done
  echo "ldap: slapd $pid is running but does not answer on $URI; restarting it" >&2
  kill_slapd "$pid"
fi
rm -f "$PIDFILE"

mkdir -p "$RUN"
chmod 755 "$RUN"   # clients read ca.pem from here; keys, config and LDIF are 600

# --- throwaway CA and server certificate (kept until --wipe)
make_certs() {
  local t
  [ -s "$RUN/ca.pem" ] && [ -s "$RUN/server.pem" ] && [ -s "$RUN/server.key" ] && return 0
  t=$(mktemp -d "$RUN/certs.XXXXXX")
  (
    cd "$t"
    openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
      -subj "/O=gatehouse tests/CN=gatehouse throwaway test CA" -keyout ca.key -out ca.pem \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -addext "subjectKeyIdentifier=hash"
    openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/O=gatehouse tests/CN=127.0.0.1" \
      -keyout server.key -out server.csr
    cat > server.ext <<'EOF'
subjectAltName = IP:127.0.0.1, DNS:localhost
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    openssl x509 -req -sha256 -days 825 -in server.csr -CA ca.pem -CAkey ca.key \
      -set_serial "0x$(openssl rand -hex 12)" -extfile server.ext -out server.pem
    openssl verify -CAfile ca.pem server.pem
  ) >"$RUN/openssl.log" 2>&1 || { echo "ldap: making the certificates failed:" >&2; cat "$RUN/openssl.log" >&2; exit 1; }
  chmod 600 "$t/ca.key" "$t/server.key"
  chmod 644 "$t/ca.pem" "$t/server.pem"
  mv -f "$t/ca.key" "$t/server.key" "$t/server.pem" "$RUN/"
  mv -f "$t/ca.pem" "$RUN/"   # last: its presence means the set is complete
  rm -rf "$t"
}
make_certs

# --- render NAME=VALUE...: replaces @NAME@ in TEMPLATE, writes OUT; fails on a leftover placeholder
render() {
  local src=$1 out=$2 kv args=()
  shift 2
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$src" > "$out.tmp"
  if grep -n '@[A-Z][A-Z0-9_]*@' "$out.tmp" >&2; then
    echo "ldap: placeholder left in $out (from $src)" >&2; rm -f "$out.tmp"; exit 1
  fi
  mv -f "$out.tmp" "$out"
}
ssha() { slappasswd -h '{SSHA}' -s "$1"; }

SCHEMA=/etc/ldap/schema
MODULES=
for d in /usr/lib/ldap /usr/lib/x86_64-linux-gnu/ldap /usr/lib/openldap /usr/libexec/openldap; do
  if [ -e "$d/back_mdb.so" ] || [ -e "$d/back_mdb.la" ]; then MODULES=$d; break; fi
done
[ -n "$MODULES" ] || { echo "ldap: cannot find slapd's modules (back_mdb)" >&2; exit 1; }
[ -f "$SCHEMA/inetorgperson.schema" ] || { echo "ldap: no schema files in $SCHEMA" >&2; exit 1; }

# A database that was never fully loaded (first start, or a load that failed) is thrown away.
# So is one whose marker survived the database files.
if [ ! -e "$RUN/data/data.mdb" ]; then rm -f "$RUN/loaded"; fi
if [ ! -e "$RUN/loaded" ]; then rm -rf "$RUN/data"; fi
mkdir -p "$RUN/data"

render "$LDAP_HOME/slapd.conf.in" "$RUN/slapd.conf" \
  "SCHEMA=$SCHEMA" "MODULES=$MODULES" "RUN=$RUN" "ROOTPW=$(ssha "$ADMIN_PW")"
chmod 600 "$RUN/slapd.conf"
slaptest -Q -u -f "$RUN/slapd.conf" >/dev/null 2>&1 \
  || { echo "ldap: slapd.conf does not pass slaptest:" >&2; slaptest -u -f "$RUN/slapd.conf" >&2 || true; exit 1; }

port_taken() { (exec 5<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$PORT" "$TLSPORT"; do
  if port_taken "$p"; then
    echo "ldap: 127.0.0.1:$p is already in use by another process (not the slapd of $RUN);" \
         "stop it or set GH_LDAP_PORT / GH_LDAPS_PORT" >&2
    exit 1
  fi
done

# --- start slapd: in its own session (so the caller's Ctrl-C or process-group kill does not reach it),
# in the foreground as far as slapd is concerned (-d), logging to slapd.log. It runs as the calling user
# (root here): no -u/-g, so it can read its key and database without any chown.
# Every inherited descriptor above 2 is closed first: fd 3 is the caller's stdout (a caller reading it to
# EOF, like Rust's Command::output(), would otherwise wait for slapd to exit), fd 9 is the lock.
echo "=== $(date '+%F %T') start.sh: starting slapd on $URI and $URIS" >> "$LOG"
(
  for fd in /proc/self/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
  done
  exec setsid slapd -f "$RUN/slapd.conf" -h "$URI/ $URIS/" -d stats
) </dev/null >>"$LOG" 2>&1 &
spawned=$!

up=0
for _ in $(seq 1 100); do
  if answers; then up=1; break; fi
  kill -0 "$spawned" 2>/dev/null || break
  sleep 0.1
done
if [ "$up" != 1 ]; then
  echo "ldap: slapd did not come up on $URI; last lines of $LOG:" >&2
  tail -n 15 "$LOG" >&2
  kill_slapd "$spawned"
  rm -f "$PIDFILE"
  exit 1
fi
# slapd writes its own pid file once it listens; fall back to the pid we started
for _ in $(seq 1 20); do [ -s "$PIDFILE" ] && break; sleep 0.05; done
[ -s "$PIDFILE" ] || echo "$spawned" > "$PIDFILE"

if [ ! -e "$RUN/loaded" ]; then
  render "$LDAP_HOME/directory.ldif.in" "$RUN/directory.ldif" \
    "PW_READER=$(ssha readerpass)" \
    "PW_ALICE=$(ssha alicepass)" \
    "PW_BOB=$(ssha bobpass)" \
    "PW_JUERGEN=$(ssha 'jürgenpass')" \
    "PW_ZOE=$(ssha zoepass)" \
    "PW_DAVE=$(ssha davepass)" \
    "PW_CARL=$(ssha carlpass)" \
    "PW_ALICE2=$(ssha alicepass2)"
  chmod 600 "$RUN/directory.ldif"
  if ! ldapmodify -a -x -H "$URI" -D "$ADMIN_DN" -w "$ADMIN_PW" -f "$RUN/directory.ldif" \
       >"$RUN/load.log" 2>"$RUN/load.err"; then
    echo "ldap: loading $RUN/directory.ldif failed (log: $RUN/load.log):" >&2
    tail -n 2 "$RUN/load.log" >&2
    cat "$RUN/load.err" >&2
    kill_slapd "$(cat "$PIDFILE")"
    rm -f "$PIDFILE"
    exit 1
  fi
  date '+%F %T' > "$RUN/loaded"
  echo "ldap: loaded the test directory" >&2
fi

echo "ldap: slapd $(cat "$PIDFILE") up on $URI and $URIS (log $LOG)" >&2
print_env >&3
