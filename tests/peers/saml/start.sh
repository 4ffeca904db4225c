#!/bin/bash
# start.sh PORT: starts (or finds) the shared SimpleSAMLphp IdP on http://127.0.0.1:PORT and prints
#   GH_SAML_IDP=<base URL>  GH_SAML_IDP_ENTITY=<entity id>  GH_SAML_IDP_SSO=<SSO URL>
#   GH_SAML_IDP_CERT=<signing cert PEM>  GH_SAML_IDP_KEY=<signing key PEM>  GH_SAML_SP_DIR=<SP metadata dir>
# A test registers a service provider by writing its metadata XML into GH_SAML_SP_DIR (*.xml).
set -euo pipefail
. "$(dirname "$0")/common.sh"
PORT=${1:?usage: start.sh PORT}
case $PORT in ''|0*|*[!0-9]*) echo "saml: bad port '$PORT'" >&2; exit 2 ;; esac
take_lock
[ -d /usr/share/simplesamlphp/www ] || { echo "saml: /usr/share/simplesamlphp missing; run tests/peers/install.sh as root" >&2; exit 1; }
php -r 'exit(class_exists("DOMDocument") ? 0 : 1);' || { echo "saml: PHP has no DOM extension (php-xml)" >&2; exit 1; }
BASE=http://127.0.0.1:$PORT
ENTITY=$BASE/saml2/idp/metadata.php
if alive "$PIDFILE" && [ "$(cat "$RUN/port" 2>/dev/null)" != "$PORT" ]; then
  echo "saml: the IdP already runs on port $(cat "$RUN/port"); stop it first" >&2; exit 1
fi
if ! alive "$PIDFILE"; then
  mkdir -p "$RUN/config" "$RUN/metadata" "$RUN/sp" "$RUN/cert" "$RUN/sessions" "$RUN/tmp" "$RUN/data"
  [ -f "$RUN/cert/idp.key" ] && [ -f "$RUN/cert/idp.crt" ] || openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
      -subj "/CN=saml-idp.peers.test" -keyout "$RUN/cert/idp.key" -out "$RUN/cert/idp.crt" 2>/dev/null
  render "$SAML_HOME/config/config.php.in" "$RUN/config/config.php" "RUN=$RUN" "BASE=$BASE"
  render "$SAML_HOME/config/saml20-idp-hosted.php.in" "$RUN/metadata/saml20-idp-hosted.php" "ENTITY=$ENTITY"
  cp "$SAML_HOME/config/authsources.php" "$RUN/config/authsources.php"
  echo "$PORT" > "$RUN/port"
  # workers: the built-in server is otherwise single-threaded; setsid: stop.sh stops the whole group
  SIMPLESAMLPHP_CONFIG_DIR="$RUN/config" PHP_CLI_SERVER_WORKERS=4 \
    setsid php -d session.save_path="$RUN/sessions" -d error_log="$RUN/php-error.log" \
    -S "127.0.0.1:$PORT" -t /usr/share/simplesamlphp/www >>"$RUN/access.log" 2>&1 < /dev/null 9>&- &
  echo $! > "$PIDFILE"
  up=0
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "$ENTITY" 2>/dev/null; then up=1; break; fi
    sleep 0.1
  done
  if [ "$up" != 1 ]; then
    echo "saml: simplesamlphp did not come up; last log lines:" >&2; tail -n 5 "$RUN/access.log" >&2; exit 1
  fi
fi
echo "GH_SAML_IDP=$BASE"
echo "GH_SAML_IDP_ENTITY=$ENTITY"
echo "GH_SAML_IDP_SSO=$BASE/saml2/idp/SSOService.php"
echo "GH_SAML_IDP_CERT=$RUN/cert/idp.crt"
echo "GH_SAML_IDP_KEY=$RUN/cert/idp.key"
echo "GH_SAML_SP_DIR=$RUN/sp"
