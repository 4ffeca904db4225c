#!/bin/bash
# Installs the host-login modules: pam_gatehouse.so (PAM) and
# libnss_gatehouse.so.2 (NSS), where the system's PAM and glibc look for
# them. It does not edit /etc/pam.d or /etc/nsswitch.conf: it prints the
# lines to add (docs/host-logins.md explains them).
#   scripts/install-host.sh                 # build (release) and install, as root
#   scripts/install-host.sh --from DIR      # install DIR/libpam_gatehouse.so and DIR/libnss_gatehouse.so
#   scripts/install-host.sh --destdir DIR   # stage under DIR (packaging); no ldconfig
#   scripts/install-host.sh --layout debian|rhel   # default: detected
set -euo pipefail
cd "$(dirname "$0")/.."

from="" destdir="" layout=""
while [ $# -gt 0 ]; do
  case "$1" in
    --from) from="$2"; shift 2 ;;
    --destdir) destdir="$2"; shift 2 ;;
    --layout) layout="$2"; shift 2 ;;
    *) echo "install-host.sh: unknown argument $1 (see the header of this script)" >&2; exit 2 ;;
  esac
done

if [ -z "$layout" ]; then
  if [ -d "/lib/$(uname -m)-linux-gnu" ]; then layout=debian
  elif [ -d /usr/lib64 ]; then layout=rhel
  else echo "install-host.sh: cannot tell the library layout; pass --layout debian|rhel" >&2; exit 2
  fi
fi
case "$layout" in
  debian) libdir="/lib/$(uname -m)-linux-gnu"; pamdir="$libdir/security" ;;
  rhel) libdir="/usr/lib64"; pamdir="$libdir/security" ;;
  *) echo "install-host.sh: --layout must be debian or rhel" >&2; exit 2 ;;
esac

if [ -z "$from" ]; then
  . scripts/lib/require-rust.sh
  require_rust install-host.sh
  cargo build --release --locked -p pam-gatehouse -p nss-gatehouse >&2
  from=target/release
fi
for f in libpam_gatehouse.so libnss_gatehouse.so; do
  [ -f "$from/$f" ] || { echo "install-host.sh: $from/$f is missing" >&2; exit 1; }
done

install -d -m 0755 "$destdir$pamdir" "$destdir$libdir"
install -m 0644 "$from/libpam_gatehouse.so" "$destdir$pamdir/pam_gatehouse.so"
install -m 0644 "$from/libnss_gatehouse.so" "$destdir$libdir/libnss_gatehouse.so.2"
echo "installed $destdir$pamdir/pam_gatehouse.so"
echo "installed $destdir$libdir/libnss_gatehouse.so.2"
if [ -z "$destdir" ] && command -v ldconfig >/dev/null; then
  ldconfig
fi
cat <<TEXT

Next (by hand; see docs/host-logins.md):
  /etc/gatehouse/gatehouse.toml:  [host] uid_range, gid_range, nss_socket = "/run/gatehouse/nss.sock"
  /etc/nsswitch.conf:             passwd: files gatehouse
                                  group:  files gatehouse
  /etc/pam.d ($layout):            the auth/account/password lines of docs/host-logins.md
TEXT
