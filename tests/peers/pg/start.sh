#!/bin/bash
# start.sh [PORT]: starts gatehouse's throwaway PostgreSQL cluster on 127.0.0.1:PORT (default 19430), or
# finds it running, and prints on stdout (and nothing else there):
#   GH_PG_URL=postgres://postgres:<pw>@127.0.0.1:<port>/postgres   (the superuser; TLS offered)
#   GH_PG_CA=<run dir>/ca.pem        (the throwaway CA that signed the server certificate)
# Safe to run again and from several processes at once (a flock serialises callers).
# State in $GH_PEERS_RUN/pg-<port>: data/ (the cluster), postgres.log, ca.pem, server.{pem,key}.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/common.sh"
exec 3>&1 1>&2   # fd 3 = the caller's stdout, for the env lines only

for cmd in openssl flock; do
  command -v "$cmd" >/dev/null || { echo "pg: $cmd not found; run tests/peers/install.sh as root" >&2; exit 1; }
done
take_lock

print_env() {
  printf 'GH_PG_URL=postgres://postgres:%s@127.0.0.1:%s/postgres\nGH_PG_CA=%s\n' "$ADMIN_PW" "$PORT" "$RUN/ca.pem" >&3
}

mkdir -p "$RUN"
chmod 755 "$PEERS_RUN" "$RUN"
if [ "$(id -u)" = 0 ]; then chown "$OS_USER" "$RUN"; fi
cd "$RUN"   # the postgres OS user may not be able to enter the caller's working directory

if running; then print_env; exit 0; fi

if [ ! -s "$RUN/ca.pem" ] || [ ! -s "$RUN/server.key" ]; then
  t=$(mktemp -d "$RUN/certs.XXXXXX")
  (
    cd "$t"
    openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
      -subj "/O=gatehouse tests/CN=gatehouse throwaway PostgreSQL CA" -keyout ca.key -out ca.pem \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/O=gatehouse tests/CN=127.0.0.1" \
      -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 -sha256 \
      -extfile server.ext -out server.pem 2>/dev/null
  )
  mv "$t/ca.pem" "$t/server.pem" "$t/server.key" "$RUN/"
  rm -rf "$t"
  chmod 644 "$RUN/ca.pem" "$RUN/server.pem"; chmod 600 "$RUN/server.key"
  if [ "$(id -u)" = 0 ]; then chown "$OS_USER" "$RUN/server.pem" "$RUN/server.key"; fi
fi

if [ ! -f "$RUN/data/PG_VERSION" ]; then
  rm -rf "$RUN/data"
  pw=$(mktemp "$RUN/pw.XXXXXX"); echo "$ADMIN_PW" > "$pw"
  if [ "$(id -u)" = 0 ]; then chown "$OS_USER" "$pw"; fi
  "${AS[@]}" "$BIN/initdb" -D "$RUN/data" -U postgres --pwfile="$pw" -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >"$RUN/initdb.log"
  rm -f "$pw"
  cat >> "$RUN/data/postgresql.conf" <<CONF
# --- gatehouse test settings ---
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$RUN'
ssl = on
ssl_cert_file = '$RUN/server.pem'
ssl_key_file = '$RUN/server.key'
max_connections = 200
fsync = off                 # a throwaway cluster: speed over durability
synchronous_commit = off
full_page_writes = off
CONF
fi
# the server must not keep the caller's pipes (fd 3, stderr) or the lock open
"${AS[@]}" "$BIN/pg_ctl" -D "$RUN/data" -l "$RUN/postgres.log" -w -t 60 start >"$RUN/pg_ctl.log" 2>&1 3>&- 9>&-
print_env
