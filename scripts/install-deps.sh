#!/bin/sh
# Install every system dependency of ngx_omni_module on Debian 12.
# Safe to run again: apt-get skips what is already installed.
set -eu
quiet=0
[ "${1:-}" = "--quiet" ] && quiet=1

PKGS="nginx nginx-dev build-essential pkg-config libssl-dev
      liblmdb-dev lmdb-utils libjansson-dev libmaxminddb-dev mmdb-bin
      libpcre2-dev libpcre3-dev zlib1g-dev
      perl libtest-base-perl libjson-pp-perl libmaxmind-db-writer-perl
      wrk curl
      dpkg-dev debhelper"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
         | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    [ "$quiet" = 1 ] || echo "install-deps: all dependencies present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
fi

echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing

# The nginx package starts a system instance on port 80; the project never
# needs it, so stop it where a service manager is running.
if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl stop nginx >/dev/null 2>&1 || true
    $SUDO systemctl disable nginx >/dev/null 2>&1 || true
fi
echo "install-deps: done"
