# Shell helpers shared by the bench scripts (sourced, after the script has
# defined die() and set BENCH, B and HOST as it needs).

# The nginx to run (Debian's unless NGINX says).  nginx itself reads NGINX
# from its environment (the listening sockets a binary upgrade passes on):
# not for the nginx processes the bench starts.
NGINX=${NGINX:-/usr/sbin/nginx}
export -n NGINX

# The first worker process under a master, waiting up to 5 s for it to
# start; nothing when there is none.
worker_of() {   # master
    local w
    for _ in $(seq 50); do
        w=$(pgrep -P "$1" -f 'worker process' | head -1 || true)
        [ -n "$w" ] && break
        sleep 0.1
    done
    echo "$w"
}

# Copies src to dst once it stops changing: build/ is shared, and a "make
# module" elsewhere rewrites the .so in place under a running nginx.
snapshot() {   # src dst
    local i a b
    for i in $(seq 10); do
        a=$(stat -c '%Y %s' "$1")
        sleep 0.3
        cp "$1" "$2.tmp"
        b=$(stat -c '%Y %s' "$1")
        if [ "$a" = "$b" ] && cmp -s "$1" "$2.tmp"; then
            mv -f "$2.tmp" "$2"
            return 0
        fi
        sleep 1
    done
    die "$1 keeps changing (a build running?)"
}

# Dies when one of the loopback ports is taken.
ports_free() {   # port...
    local p
    for p in "$@"; do
        if ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then
            die "port $HOST:$p is in use (set PORT_BASE)"
        fi
    done
}

# After bench/run.sh: its configuration CFG (1 worker) started again from
# build/bench; MASTER and WORKER are set, and the exit stops it.
run_conf_start() {   # cfg tag
    local cfg=$1 tag=$2
    [ -f "$B/conf/$cfg.conf" ] || die "no $B/conf/$cfg.conf: run bench/run.sh first"
    "$NGINX" -p "$B/" -c "conf/$cfg.conf" -e "logs/$cfg.$tag.log" \
        || die "nginx did not start ($cfg)"
    trap run_conf_stop EXIT
    for _ in $(seq 50); do [ -s "$B/logs/$cfg.pid" ] && break; sleep 0.1; done
    MASTER=$(cat "$B/logs/$cfg.pid") || die "no pid file"
    WORKER=$(worker_of "$MASTER")
    [ -n "$WORKER" ] || die "no worker under master $MASTER"
}

run_conf_stop() {
    [ -n "${MASTER:-}" ] || return 0
    kill -QUIT "$MASTER" 2>/dev/null || true
    for _ in $(seq 150); do
        kill -0 "$MASTER" 2>/dev/null || break
        sleep 0.2
    done
    MASTER=
}

# wrk -t1 -c32 on CPU 1 with bench/wrk.lua (COOKIES, IPS): its BENCH line,
# or death when wrk failed or saw bad statuses or timeouts.
wrk_bench() {   # url seconds
    local out line
    out=$(taskset -c 1 wrk -t1 -c32 -d"$2s" -s "$BENCH/wrk.lua" "$1" \
          -- "$COOKIES" omni "$IPS" 2>&1) || die "wrk failed: $out"
    line=$(echo "$out" | grep '^BENCH ') || die "no BENCH line from wrk"
    case $line in
        *"err_status=0 "*"err_timeout=0"*) ;;
        *) die "wrk saw errors: $line" ;;
    esac
    echo "$line"
}

# The http{} settings every bench configuration shares (temp paths under
# TMP, relative to the prefix; sendfile; long keep-alive; no access log;
# open_file_cache), 4 spaces in, for the configurations' heredocs.
conf_http_common() {   # tmp-dir
    cat <<CONF
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;

    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;

    open_file_cache max=64 inactive=60s;
    open_file_cache_valid 60s;
    open_file_cache_min_uses 1;
CONF
}
