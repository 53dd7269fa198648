/*
 * The propagation probe of bench/cluster.sh (issue 13): how long a page
 * view served by one cluster node takes to be in the other node's store.
 *
 *   cluster-probe --port P --path-prefix /probe/TAG- --cookie VALUE
 *                 --store DIR [--store DIR ...] [--seconds S]
 *                 [--interval MS] [--poll MS] [--timeout MS]
 *                 [--xff ADDR] [--first N]
 *
 * Every --interval ms (default 50) it sends one GET of a unique path
 * (PREFIX<n>) to 127.0.0.1:P over one keep-alive connection, with the
 * visitor's signed cookie and a browser User-Agent, and then reads each
 * store's touchpoint log (LMDB, read-only, the records appended since the
 * request was sent) every --poll ms (default 2) until the page view's
 * touchpoint ("path":"PREFIX<n>") is in every store, or --timeout ms
 * (default 10000) pass.  One probe at a time: a slow one delays the next.
 *
 * Output, one line per probe on stdout:
 *
 *   n  answered_us  store1_us  store2_us ...
 *
 * microseconds from just before the request was written: until its
 * response was read, and until the touchpoint was seen in each store
 * (-1: not seen within the timeout).  Exit status 0, 1 on an error (a
 * store that cannot be read, a request not answered 200).
 *
 * Built by bench/cluster.sh: cc -O2 -o cluster-probe cluster-probe.c -llmdb
 */

#define _GNU_SOURCE

#include <errno.h>
#include <lmdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_STORES  4
#define TP_HEADER   20          /* profile id (16) + time (4) */

typedef struct {
    const char  *dir;
    MDB_env     *env;
    MDB_dbi      dbi;
    MDB_txn     *txn;
    uint64_t     scanned;       /* the last seq looked at */
} store_t;

static store_t   stores[MAX_STORES];
static int       nstores;
static volatile sig_atomic_t  stop;

static void
on_signal(int sig)
{
    (void) sig;
    stop = 1;
}

static int64_t
now_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
sleep_until(int64_t t)
{
    int64_t          d;
    struct timespec  ts;

    d = t - now_us();
    if (d <= 0) {
        return;
    }
    ts.tv_sec = d / 1000000;
    ts.tv_nsec = (d % 1000000) * 1000;
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR && !stop) { }
}

static void
die(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "cluster-probe: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    exit(1);
}

static uint64_t
be64(const void *p)
{
    const unsigned char  *c = p;
    uint64_t              v = 0;
    int                   i;

    for (i = 0; i < 8; i++) {
        v = (v << 8) | c[i];
    }
    return v;
}

static void
store_open(store_t *s)
{
    int  rc;

    rc = mdb_env_create(&s->env);
    if (rc == 0) {
        rc = mdb_env_set_maxdbs(s->env, 16);
    }
    if (rc == 0) {
        rc = mdb_env_set_maxreaders(s->env, 126);
    }
    if (rc == 0) {
        rc = mdb_env_open(s->env, s->dir,
                          MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD, 0640);
    }
    if (rc == 0) {
        rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->txn);
    }
    if (rc == 0) {
        rc = mdb_dbi_open(s->txn, "touchpoints", 0, &s->dbi);
    }
    if (rc == 0) {
        /* a commit keeps the handle (a reset would close it) */
        rc = mdb_txn_commit(s->txn);
    }
    if (rc == 0) {
        rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->txn);
    }
    if (rc != 0) {
        die("%s: %s", s->dir, mdb_strerror(rc));
    }
    mdb_txn_reset(s->txn);
}

static int
store_renew(store_t *s)
{
    int  rc;

    rc = mdb_txn_renew(s->txn);
    if (rc == MDB_MAP_RESIZED) {
        /* the writer grew the map: adopt its size */
        mdb_txn_abort(s->txn);
        rc = mdb_env_set_mapsize(s->env, 0);
        if (rc == 0) {
            rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->txn);
        }
    }
    if (rc != 0) {
        die("%s: %s", s->dir, mdb_strerror(rc));
    }
    return 0;
}

/* The log's last seq (0 when empty). */
static uint64_t
store_last(store_t *s)
{
    int          rc;
    uint64_t     seq = 0;
    MDB_val      k, v;
    MDB_cursor  *c;

    store_renew(s);
    rc = mdb_cursor_open(s->txn, s->dbi, &c);
    if (rc == 0) {
        if (mdb_cursor_get(c, &k, &v, MDB_LAST) == 0 && k.mv_size == 8) {
            seq = be64(k.mv_data);
        }
        mdb_cursor_close(c);
    }
    mdb_txn_reset(s->txn);
    return seq;
}

/*
 * Looks for needle in the records after s->scanned; moves s->scanned to
 * the last record looked at.  1: found.
 */
static int
store_find(store_t *s, const char *needle, size_t nlen)
{
    int            rc, found = 0;
    uint64_t       seq;
    MDB_val        k, v;
    MDB_cursor    *c;
    unsigned char  kb[8];
    int            i;

    store_renew(s);
    rc = mdb_cursor_open(s->txn, s->dbi, &c);
    if (rc != 0) {
        die("%s: %s", s->dir, mdb_strerror(rc));
    }

    seq = s->scanned + 1;
    for (i = 7; i >= 0; i--) {
        kb[i] = (unsigned char) (seq & 0xff);
        seq >>= 8;
    }
    k.mv_size = 8;
    k.mv_data = kb;

    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
    {
        if (k.mv_size != 8) {
            continue;
        }
        s->scanned = be64(k.mv_data);
        if (v.mv_size > TP_HEADER
            && memmem((char *) v.mv_data + TP_HEADER, v.mv_size - TP_HEADER,
                      needle, nlen) != NULL)
        {
            found = 1;
            break;
        }
    }

    mdb_cursor_close(c);
    mdb_txn_reset(s->txn);
    return found;
}

static int
connect_to(int port)
{
    int                 fd, one = 1;
    struct sockaddr_in  sa;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        die("socket: %s%s", strerror(errno), "");
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
        die("connect: %s%s", strerror(errno), "");
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/*
 * One request on the keep-alive connection; reads the whole response
 * (Content-Length).  Returns the status, 0 when the connection closed.
 */
static int
request(int fd, const char *req, size_t len)
{
    static char  buf[262144];
    size_t       have = 0, need = 0;
    ssize_t      n;
    char        *hend, *cl;
    int          status = 0;

    while (len) {
        n = write(fd, req, len);
        if (n <= 0) {
            return 0;
        }
        req += n;
        len -= (size_t) n;
    }

    for (;;) {
        n = read(fd, buf + have, sizeof(buf) - 1 - have);
        if (n <= 0) {
            return 0;
        }
        have += (size_t) n;
        buf[have] = '\0';
        hend = strstr(buf, "\r\n\r\n");
        if (hend == NULL) {
            if (have >= sizeof(buf) - 1) {
                return 0;
            }
            continue;
        }
        if (status == 0) {
            if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
                return 0;
            }
            cl = strcasestr(buf, "\r\ncontent-length:");
            if (cl == NULL || cl > hend) {
                return 0;           /* the probe location sends a length */
            }
            need = (size_t) (hend + 4 - buf) + strtoul(cl + 17, NULL, 10);
            if (need > sizeof(buf) - 1) {
                return 0;
            }
        }
        if (have >= need) {
            return status;
        }
    }
}

int
main(int argc, char **argv)
{
    int          i, port = 0, fd, st, left;
    int64_t      interval = 50000, poll = 2000, timeout = 10000000;
    int64_t      seconds = 10, t_end, t_next, t0, t_ans, t;
    int64_t      dt[MAX_STORES];
    long         n, first = 1;
    const char  *prefix = NULL, *cookie = NULL, *xff = NULL;
    char         path[512], needle[600], req[4096];
    size_t       nlen, rlen;

    for (i = 1; i < argc; i++) {
        const char  *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (v == NULL) {
            die("%s: a value is missing%s", a, "");
        }
        if (strcmp(a, "--port") == 0) {
            port = atoi(v);
        } else if (strcmp(a, "--path-prefix") == 0) {
            prefix = v;
        } else if (strcmp(a, "--cookie") == 0) {
            cookie = v;
        } else if (strcmp(a, "--xff") == 0) {
            xff = v;
        } else if (strcmp(a, "--store") == 0) {
            if (nstores == MAX_STORES) {
                die("too many stores%s%s", "", "");
            }
            stores[nstores++].dir = v;
        } else if (strcmp(a, "--seconds") == 0) {
            seconds = atoll(v);
        } else if (strcmp(a, "--interval") == 0) {
            interval = atoll(v) * 1000;
        } else if (strcmp(a, "--poll") == 0) {
            poll = atoll(v) * 1000;
        } else if (strcmp(a, "--timeout") == 0) {
            timeout = atoll(v) * 1000;
        } else if (strcmp(a, "--first") == 0) {
            first = atol(v);
        } else {
            die("unknown option %s%s", a, "");
        }
        i++;
    }

    if (port <= 0 || prefix == NULL || cookie == NULL || nstores == 0) {
        fprintf(stderr, "usage: cluster-probe --port P --path-prefix PREFIX "
                "--cookie VALUE --store DIR [--store DIR] [--seconds S] "
                "[--interval MS] [--poll MS] [--timeout MS] [--xff ADDR] "
                "[--first N]\n");
        return 2;
    }

    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    for (i = 0; i < nstores; i++) {
        store_open(&stores[i]);
    }

    fd = connect_to(port);
    t_end = now_us() + seconds * 1000000;
    t_next = now_us();

    for (n = first; !stop && now_us() < t_end; n++) {
        sleep_until(t_next);
        t_next += interval;
        if (stop) {
            break;
        }

        snprintf(path, sizeof(path), "%s%ld", prefix, n);
        nlen = (size_t) snprintf(needle, sizeof(needle), "\"path\":\"%s\"",
                                 path);
        rlen = (size_t) snprintf(req, sizeof(req),
            "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: omni=%s\r\n"
            "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) "
            "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
            "Safari/537.36\r\n%s%s%s\r\n",
            path, cookie, xff ? "X-Forwarded-For: " : "", xff ? xff : "",
            xff ? "\r\n" : "");

        /* the logs' ends before the request: what comes after is new */
        for (i = 0; i < nstores; i++) {
            stores[i].scanned = store_last(&stores[i]);
            dt[i] = -1;
        }

        t0 = now_us();
        st = request(fd, req, rlen);
        if (st == 0) {
            close(fd);
            fd = connect_to(port);
            t0 = now_us();
            st = request(fd, req, rlen);
        }
        t_ans = now_us();
        if (st != 200) {
            fprintf(stderr, "cluster-probe: %s answered %d\n", path, st);
            return 1;
        }

        left = nstores;
        for (;;) {
            for (i = 0; i < nstores; i++) {
                if (dt[i] < 0 && store_find(&stores[i], needle, nlen)) {
                    dt[i] = now_us() - t0;
                    left--;
                }
            }
            t = now_us();
            if (left == 0 || t - t0 >= timeout) {
                break;
            }
            sleep_until(t + poll);
        }

        printf("%ld\t%lld", n, (long long) (t_ans - t0));
        for (i = 0; i < nstores; i++) {
            printf("\t%lld", (long long) dt[i]);
        }
        printf("\n");
    }

    close(fd);
    return 0;
}
