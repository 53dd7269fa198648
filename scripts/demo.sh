#!/usr/bin/env bash
# The demo shop: nginx with ngx_omni_module on http://127.0.0.1:8080,
# a seeded store (demo/profiles.ndjson) and a signed cookie for a seeded
# customer, so personalization is visible at once.
#
#   scripts/demo.sh start | stop | status
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO=${OMNI_DEMO_DIR:-$ROOT/build/demo}
NGINX=${NGINX:-/usr/sbin/nginx}
OMNICTL=$ROOT/build/omnictl
PORT=${OMNI_DEMO_PORT:-8080}

# The seed data (demo/profiles.ndjson) was written as of this instant; its
# times are moved forward so that it is always "now" for the demo: Ana's
# cart is a few hours old whenever the demo starts, never a year.
SEED_NOW=1763910000

nginx_cmd() {
    "$NGINX" -p "$DEMO" -c conf/nginx.conf -e logs/error.log "$@"
}

running() {
    [ -f "$DEMO/logs/nginx.pid" ] && kill -0 "$(cat "$DEMO/logs/nginx.pid")" 2>/dev/null
}

stop() {
    if running; then
        nginx_cmd -s quit
        for _ in $(seq 1 50); do
            running || break
            sleep 0.1
        done
        echo "demo: stopped"
    fi
}

start() {
    stop
    mkdir -p "$DEMO"/{conf,logs,tmp}

    # A fresh random signing secret per demo directory, never a default.
    if [ ! -s "$DEMO/secret" ]; then
        (umask 077; openssl rand -base64 48 | tr -d '\n' > "$DEMO/secret")
    fi

    if [ ! -s "$DEMO/events.key" ]; then
        (umask 077; openssl rand -hex 32 | tr -d '\n' > "$DEMO/events.key")
    fi

    user_line="# workers run as the nginx default user"
    if [ "$(id -u)" = 0 ]; then
        # Root runs the demo from a private checkout: let the workers
        # read it.  Never do this on a real server.
        user_line="user root;"
    fi

    sed -e "s|@MODULE@|$ROOT/build/ngx_http_omni_module.so|" \
        -e "s|@ROOT@|$ROOT|g" -e "s|@DEMO@|$DEMO|g" \
        -e "s|@USER@|$user_line|" -e "s|@PORT@|$PORT|" \
        -e "s|@SECRET@|\"$(cat "$DEMO/secret")\"|" \
        -e "s|@EVENTS_KEY@|\"$(cat "$DEMO/events.key")\"|" \
        "$ROOT/demo/nginx.conf.in" > "$DEMO/conf/nginx.conf"

    # Seed the store (replaces the demo profiles; visitors' own stay).
    "$OMNICTL" --store "$DEMO/store" --map-size 64m stat --create > /dev/null
    perl -MJSON::PP -ne '
        BEGIN { $d = time - '"$SEED_NOW"'; $j = JSON::PP->new->canonical }
        my $p = $j->decode($_);
        $p->{$_} += $d for grep { $p->{$_} } qw(created updated visit_last);
        $p->{last_seen}{$_} += $d for keys %{ $p->{last_seen} || {} };
        $p->{cart}{updated_at} += $d if $p->{cart};
        $_->{time} += $d for @{ $p->{purchases} || [] }, @{ $p->{views} || [] };
        print $j->encode($p), "\n";
    ' "$ROOT/demo/profiles.ndjson" > "$DEMO/profiles.ndjson"
    "$OMNICTL" --store "$DEMO/store" import "$DEMO/profiles.ndjson"

    nginx_cmd -t -q
    nginx_cmd

    for _ in $(seq 1 50); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
        sleep 0.1
    done

    # A browser cookie that belongs to Ana, a seeded customer.
    ana=$("$OMNICTL" --store "$DEMO/store" --secret-file "$DEMO/secret" \
              cookie --profile a11ce0000000000000000000000000a1 \
          | sed 's/.*"cookie":"\([^"]*\)".*/\1/')

    cat <<TXT

demo: nginx with ngx_omni_module on http://127.0.0.1:$PORT/

  A new visitor gets a signed cookie:
    curl -i http://127.0.0.1:$PORT/

  Ana, a seeded customer (cookie minted with omnictl cookie --profile):
    curl -s -b 'omni=$ana' http://127.0.0.1:$PORT/
    curl -s -b 'omni=$ana' http://127.0.0.1:$PORT/api/whoami

  An app token:
    curl -s -X POST http://127.0.0.1:$PORT/omni/identify

  Ana buys her cart's Trail Runner 42 at the store's till (a trusted POS
  event): her next page drops the cart offer and asks for a review.
    curl -s -H "Authorization: Bearer \$(cat $DEMO/events.key)" \\
         -H 'Content-Type: application/json' \\
         -d '{"type":"track","event":"Order Completed","userId":"cust-1001","properties":{"order_id":"POS-1","channel":"pos","products":[{"sku":"TRAIL-42","price":129}]}}' \\
         http://127.0.0.1:$PORT/omni/events
    curl -s -b 'omni=$ana' http://127.0.0.1:$PORT/

  The feed other channels read:
    curl -s 'http://127.0.0.1:$PORT/omni/feed?after=0'

  Store:   $OMNICTL --store $DEMO/store stat
  Logs:    $DEMO/logs/
  Stop:    make demo-stop
TXT

    echo
    echo "demo: Ana's page says:"
    curl -s -b "omni=$ana" "http://127.0.0.1:$PORT/" | grep -E 'class="omni omni-' || {
        echo "demo: personalization is not visible: see $DEMO/logs/error.log" >&2
        exit 1
    }
}

case "${1:-start}" in
start)  start ;;
stop)   stop ;;
status) if running; then echo "demo: running"; else echo "demo: stopped"; fi ;;
*)      echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
