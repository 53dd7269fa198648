/*
 * An open-loop load generator for bench/latency.sh (GUIDE P5: the latency
 * the module adds at half of plain nginx's maximum rate).  wrk sends a
 * connection's next request when the previous answer is in (closed loop),
 * and its delay() paces in whole milliseconds on one timer tick, so a
 * "half load" is bursts.  This sends requests at evenly spaced times,
 * RATE per second, each on a keep-alive connection that is idle (a pool of
 * CONNS), and measures each answer from the time it was due, not from the
 * time it could be sent: a request that waits for a free connection
 * counts its wait (no coordinated omission).
 *
 *   pace HOST PORT PATH RATE SECONDS CONNS COOKIE_FILE IP_FILE [COOKIE]
 *
 * COOKIE_FILE: lines "<id> <cookie value>" (bench/mint-cookies.pl), the
 * cookie named COOKIE (default omni); IP_FILE: one address a line, sent
 * as X-Forwarded-For; the User-Agent is bench/wrk.lua's.  Prints
 *
 *   PACE sent=N answered=N errors=N late=N rate=R p50=US p90=US p99=US
 *        max=US
 *
 * latencies in microseconds; late: requests sent more than 1 ms after
 * their time (no idle connection, or the client was behind).  Exit
 * status 1 on any error (a connection lost, a status other than 200).
 */

#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PACE_UA  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) " \
                 "AppleWebKit/537.36 (KHTML, like Gecko) " \
                 "Chrome/124.0.0.0 Safari/537.36"

typedef struct {
    int       fd;
    int       busy;
    int64_t   due;              /* the request's time, ns */
    char      buf[65536];
    size_t    len;
} pace_conn_t;

static char   **cookies, **ips;
static size_t   ncookies, nips;


static int64_t
pace_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}


static char **
pace_lines(const char *file, int field, size_t *n)
{
    FILE    *f;
    char     line[4096], *p, *q, **a = NULL;
    size_t   size = 0;

    f = fopen(file, "r");
    if (f == NULL) {
        perror(file);
        exit(1);
    }

    *n = 0;

    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        p = line;

        if (field == 2) {
            p = strchr(line, ' ');
            if (p == NULL) {
                continue;
            }
            p++;
        }

        q = p + strcspn(p, " ");
        *q = '\0';

        if (*p == '\0') {
            continue;
        }

        if (*n == size) {
            size = size ? size * 2 : 1024;
            a = realloc(a, size * sizeof(char *));
        }

        a[(*n)++] = strdup(p);
    }

    fclose(f);

    if (*n == 0) {
        fprintf(stderr, "pace: %s: no lines\n", file);
        exit(1);
    }

    return a;
}


static int
pace_cmp(const void *a, const void *b)
{
    int64_t  x = *(const int64_t *) a, y = *(const int64_t *) b;

    return x < y ? -1 : x > y;
}


/*
 * Whether buf holds one whole answer: its length, 0 when more is needed,
 * -1 on a status other than 200.  Content-Length or chunked.
 */
static long
pace_complete(const char *buf, size_t len)
{
    const char  *end, *p, *cl;
    long         n, size;

    end = memmem(buf, len, "\r\n\r\n", 4);
    if (end == NULL) {
        return 0;
    }

    if (len < 12 || memcmp(buf + 9, "200", 3) != 0) {
        return -1;
    }

    end += 4;
    n = end - buf;

    cl = memmem(buf, n, "\r\nContent-Length: ", 18);
    if (cl != NULL) {
        size = strtol(cl + 18, NULL, 10);
        return (size_t) (n + size) <= len ? n + size : 0;
    }

    /* chunked: sizes in hex, each chunk followed by CRLF */
    p = end;

    for ( ;; ) {
        char  *e;

        if (memmem(p, len - (p - buf), "\r\n", 2) == NULL) {
            return 0;
        }

        size = strtol(p, &e, 16);
        p = strstr(e, "\r\n") + 2;

        if ((size_t) (p - buf) + size + 2 > len) {
            return 0;
        }

        p += size + 2;

        if (size == 0) {
            return p - buf;
        }
    }
}


int
main(int argc, char **argv)
{
    int                  ep, i, n, one = 1, errors = 0;
    char                 req[8192];
    long                 done;
    double               rate, secs;
    size_t               nlat = 0, k = 0, late = 0, sent = 0, conns;
    ssize_t              r;
    int64_t              t0, next, step, end, now, *lat;
    const char          *host, *path, *cname;
    pace_conn_t         *c, **idle;
    size_t               nidle;
    struct timespec      ts;
    struct sockaddr_in   sa;
    struct epoll_event   ev, evs[256];

    if (argc < 9) {
        fprintf(stderr, "usage: pace HOST PORT PATH RATE SECONDS CONNS "
                        "COOKIE_FILE IP_FILE [COOKIE]\n");
        return 2;
    }

    host = argv[1];
    path = argv[3];
    rate = atof(argv[4]);
    secs = atof(argv[5]);
    conns = (size_t) atoi(argv[6]);
    cookies = pace_lines(argv[7], 2, &ncookies);
    ips = pace_lines(argv[8], 1, &nips);
    cname = argc > 9 ? argv[9] : "omni";

    if (rate <= 0 || secs <= 0 || conns == 0) {
        fprintf(stderr, "pace: RATE, SECONDS and CONNS must be positive\n");
        return 2;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) atoi(argv[2]));
    inet_pton(AF_INET, host, &sa.sin_addr);

    ep = epoll_create1(0);
    c = calloc(conns, sizeof(pace_conn_t));
    idle = calloc(conns, sizeof(pace_conn_t *));
    lat = calloc((size_t) (rate * secs) + 16, sizeof(int64_t));
    nidle = 0;

    for (k = 0; k < conns; k++) {
        c[k].fd = socket(AF_INET, SOCK_STREAM, 0);

        if (connect(c[k].fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
            perror("pace: connect");
            return 1;
        }

        setsockopt(c[k].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        ev.events = EPOLLIN;
        ev.data.ptr = &c[k];
        epoll_ctl(ep, EPOLL_CTL_ADD, c[k].fd, &ev);
        idle[nidle++] = &c[k];
    }

    step = (int64_t) (1e9 / rate);
    t0 = pace_now() + 1000000;
    end = t0 + (int64_t) (secs * 1e9);
    next = t0;
    k = 0;

    while (next < end || nidle < conns) {
        now = pace_now();

        /* every request whose time has come, on an idle connection */
        while (next < end && next <= now && nidle > 0) {
            pace_conn_t  *cc = idle[--nidle];

            n = snprintf(req, sizeof(req),
                         "GET %s HTTP/1.1\r\nHost: %s\r\n"
                         "Cookie: %s=%s\r\nX-Forwarded-For: %s\r\n"
                         "User-Agent: " PACE_UA "\r\n\r\n",
                         path, host, cname, cookies[k % ncookies],
                         ips[k % nips]);
            k++;

            if (write(cc->fd, req, (size_t) n) != n) {
                perror("pace: write");
                return 1;
            }

            if (now - next > 1000000) {
                late++;
            }

            cc->busy = 1;
            cc->due = next;
            cc->len = 0;
            sent++;
            next += step;
        }

        /* wait for answers, or the next request's time */
        now = pace_now();
        ts.tv_sec = 0;
        ts.tv_nsec = 0;

        if (next < end && nidle > 0 && next > now) {
            ts.tv_nsec = (long) (next - now);
        } else if (nidle == conns || nidle > 0) {
            ts.tv_nsec = 0;
        } else {
            ts.tv_nsec = 1000000;       /* every connection is busy */
        }

        if (next >= end) {
            ts.tv_nsec = 1000000;
        }

        n = epoll_pwait2(ep, evs, 256, &ts, NULL);

        for (i = 0; i < n; i++) {
            pace_conn_t  *cc = evs[i].data.ptr;

            r = read(cc->fd, cc->buf + cc->len, sizeof(cc->buf) - cc->len);

            if (r <= 0) {
                fprintf(stderr, "pace: a connection was lost\n");
                return 1;
            }

            cc->len += (size_t) r;
            done = pace_complete(cc->buf, cc->len);

            if (done < 0) {
                errors++;
                fprintf(stderr, "pace: %.*s\n", 12, cc->buf);
                return 1;
            }

            if (done > 0 && cc->busy) {
                lat[nlat++] = pace_now() - cc->due;
                cc->busy = 0;
                cc->len = 0;
                idle[nidle++] = cc;
            }
        }

        if (next >= end && nidle == conns) {
            break;
        }
    }

    qsort(lat, nlat, sizeof(int64_t), pace_cmp);

#define PCT(q)  (nlat ? lat[(size_t) ((nlat - 1) * (q))] / 1000 : 0)

    printf("PACE sent=%zu answered=%zu errors=%d late=%zu rate=%.0f "
           "p50=%lld p90=%lld p99=%lld max=%lld\n",
           sent, nlat, errors, late, nlat / secs,
           (long long) PCT(0.50), (long long) PCT(0.90),
           (long long) PCT(0.99), (long long) PCT(1.0));

    return errors ? 1 : 0;
}
