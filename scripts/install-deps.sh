#!/bin/sh
# Install every system dependency of ngx_omni_module on Debian 12.
# Safe to run again: apt-get skips what is already installed.
set -eu
quiet=0
[ "${1:-}" = "--quiet" ] && quiet=1

# Segment's own server library for t/48-segment.t, from npm into build/npm
# (nothing vendored in git); the test skips, saying why, without it.
SEGMENT_NODE="@segment/analytics-node@3.1.0"

npm_deps() {
    dir="$(cd "$(dirname "$0")/.." && pwd)/build/npm"
    [ -f "$dir/node_modules/@segment/analytics-node/package.json" ] && return 0
    command -v npm >/dev/null 2>&1 || return 0
    mkdir -p "$dir"
    echo "install-deps: npm install $SEGMENT_NODE into build/npm"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
        "$SEGMENT_NODE" >/dev/null 2>&1 \
        || echo "install-deps: npm install failed (t/48-segment.t will skip)"
}

# chromium: the console's browser test (t/14-console.t), headless.
# libnats-dev: the cluster's NATS JetStream client (omni_cluster);
# libzstd-dev: the cluster's compressed runs (omni_cluster compress=);
# nats-server: the tests' own 3-server JetStream clusters (t/lib/OmniNats.pm).
PKGS="nginx nginx-dev build-essential pkg-config libssl-dev
      liblmdb-dev lmdb-utils libjansson-dev libmaxminddb-dev mmdb-bin
      libpcre2-dev libpcre3-dev zlib1g-dev
      libnats-dev libzstd-dev nats-server
      perl libtest-base-perl libjson-pp-perl libmaxmind-db-writer-perl
      wrk curl
      dpkg-dev debhelper
      prometheus
      chromium"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
         | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

# Node.js and npm, for t/48-segment.t's real Segment library (the
# nodejs package of some images brings npm along; Debian's does not).
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"

if [ -z "$missing" ]; then
    [ "$quiet" = 1 ] || echo "install-deps: all dependencies present"
    npm_deps
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
    # prometheus is here for promtool (t/49-metrics.t), not its server
    $SUDO systemctl stop prometheus >/dev/null 2>&1 || true
    $SUDO systemctl disable prometheus >/dev/null 2>&1 || true
    # nats-server is here for the tests' own clusters (loopback, free
    # ports), not the packaged service on 4222
    $SUDO systemctl stop nats-server >/dev/null 2>&1 || true
    $SUDO systemctl disable nats-server >/dev/null 2>&1 || true
fi
npm_deps
echo "install-deps: done"
