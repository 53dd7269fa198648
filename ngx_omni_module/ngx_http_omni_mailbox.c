/*
 * The workers' mailboxes: one non-blocking UNIX datagram socket per
 * worker, bound to an abstract address made of the store zone's id and
 * the worker's pid, read by the worker's event loop.
 *
 * The writer uses them in both directions: a worker that queued an event
 * job wakes the lease holder at once (no waiting for its next look at
 * the queue), and the holder sends each job's results back to the
 * worker whose request waits for them.  A datagram to a worker that is
 * gone fails at once (ECONNREFUSED) and is dropped: nobody waits there.
 * Abstract addresses need no file and vanish with the socket.
 *
 * A receiver's queue holds only net.unix.max_dgram_qlen datagrams (10 by
 * default): a batch that answers more jobs of one worker than that, or a
 * worker busy elsewhere for a moment, makes sendto() fail with EAGAIN.
 * A result is what a request waits for, so it is never given up then:
 * it waits in this worker's outbox, retried every millisecond, in order,
 * until the receiver has room, is gone, or has stopped waiting (the job
 * timeout).  Results carry their job's id, so their order does not
 * matter.  A wake-up may be dropped: a full queue wakes its reader
 * anyway.
 */

#include "ngx_http_omni_module.h"

#include <sys/socket.h>
#include <sys/un.h>


#define NGX_HTTP_OMNI_MAILBOX_MAX    65536
#define NGX_HTTP_OMNI_MAILBOX_RETRY  1           /* ms */


/* A datagram that found its receiver's queue full. */
typedef struct {
    ngx_queue_t   queue;
    ngx_pid_t     pid;
    ngx_msec_t    expires;
    ngx_msec_t    timeout;
    size_t        len;
    u_char        data[1];
} ngx_http_omni_mail_t;


static ngx_int_t ngx_http_omni_mailbox_sendto(ngx_pid_t pid,
    const void *data, size_t len);
static void ngx_http_omni_mailbox_flush(ngx_event_t *ev);
static void ngx_http_omni_mailbox_read(ngx_event_t *rev);


static ngx_connection_t  *ngx_http_omni_mailbox_c;
static uint64_t           ngx_http_omni_mailbox_zone;
static ngx_queue_t        ngx_http_omni_mailbox_out;
static ngx_uint_t         ngx_http_omni_mailbox_nout;
static ngx_event_t        ngx_http_omni_mailbox_retry;


static socklen_t
ngx_http_omni_mailbox_addr(struct sockaddr_un *sun, ngx_pid_t pid)
{
    int  n;

    ngx_memzero(sun, sizeof(struct sockaddr_un));
    sun->sun_family = AF_UNIX;

    /* sun_path[0] == '\0': the abstract namespace */
    n = snprintf(sun->sun_path + 1, sizeof(sun->sun_path) - 1,
                 "omni-%016llx-%ld",
                 (unsigned long long) ngx_http_omni_mailbox_zone, (long) pid);

    return (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + n);
}


ngx_int_t
ngx_http_omni_mailbox_init(ngx_cycle_t *cycle, uint64_t zone_id)
{
    int                  fd;
    socklen_t            len;
    ngx_event_t         *rev;
    ngx_connection_t    *c;
    struct sockaddr_un   sun;

    ngx_http_omni_mailbox_zone = zone_id;

    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_socket_errno,
                      "omni: mailbox socket() failed");
        return NGX_ERROR;
    }

    len = ngx_http_omni_mailbox_addr(&sun, ngx_pid);

    if (bind(fd, (struct sockaddr *) &sun, len) == -1) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_socket_errno,
                      "omni: mailbox bind() failed");
        close(fd);
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, cycle->log);
    if (c == NULL) {
        close(fd);
        return NGX_ERROR;
    }

    rev = c->read;
    rev->handler = ngx_http_omni_mailbox_read;
    rev->log = cycle->log;
    c->data = NULL;

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_close_connection(c);
        return NGX_ERROR;
    }

    ngx_http_omni_mailbox_c = c;

    ngx_queue_init(&ngx_http_omni_mailbox_out);
    ngx_http_omni_mailbox_nout = 0;

    /*
     * Not cancelable: an exiting worker first hands out the results it
     * owes (each for at most the job timeout).
     */
    ngx_memzero(&ngx_http_omni_mailbox_retry, sizeof(ngx_event_t));
    ngx_http_omni_mailbox_retry.handler = ngx_http_omni_mailbox_flush;
    ngx_http_omni_mailbox_retry.log = cycle->log;
    ngx_http_omni_mailbox_retry.data = c;

    return NGX_OK;
}


void
ngx_http_omni_mailbox_exit(void)
{
    ngx_queue_t           *q;
    ngx_http_omni_mail_t  *m;

    if (ngx_http_omni_mailbox_retry.timer_set) {
        ngx_del_timer(&ngx_http_omni_mailbox_retry);
    }

    while (ngx_http_omni_mailbox_nout) {
        q = ngx_queue_head(&ngx_http_omni_mailbox_out);
        m = ngx_queue_data(q, ngx_http_omni_mail_t, queue);
        ngx_queue_remove(q);
        ngx_http_omni_mailbox_nout--;
        ngx_free(m);
    }

    if (ngx_http_omni_mailbox_c) {
        ngx_close_connection(ngx_http_omni_mailbox_c);
        ngx_http_omni_mailbox_c = NULL;
    }
}


/*
 * Sends a datagram to the worker pid.  reliable: a result that must
 * arrive; when the receiver's queue is full it waits in the outbox for
 * at most timeout ms.  NGX_DECLINED: the receiver is gone.
 */
ngx_int_t
ngx_http_omni_mailbox_send(ngx_pid_t pid, const void *data, size_t len,
    ngx_msec_t timeout)
{
    ngx_int_t              rc;
    ngx_http_omni_mail_t  *m;

    if (ngx_http_omni_mailbox_c == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_omni_mailbox_sendto(pid, data, len);

    if (rc != NGX_AGAIN || timeout == 0) {
        return rc;
    }

    m = ngx_alloc(sizeof(ngx_http_omni_mail_t) + len,
                  ngx_http_omni_mailbox_retry.log);
    if (m == NULL) {
        return NGX_ERROR;
    }

    m->pid = pid;
    m->expires = ngx_current_msec + timeout;
    m->timeout = timeout;
    m->len = len;
    ngx_memcpy(m->data, data, len);

    ngx_queue_insert_tail(&ngx_http_omni_mailbox_out, &m->queue);
    ngx_http_omni_mailbox_nout++;

    if (!ngx_http_omni_mailbox_retry.timer_set) {
        ngx_add_timer(&ngx_http_omni_mailbox_retry,
                      NGX_HTTP_OMNI_MAILBOX_RETRY);
    }

    return NGX_OK;
}


/* NGX_AGAIN: the receiver's queue is full; NGX_DECLINED: it is gone. */
static ngx_int_t
ngx_http_omni_mailbox_sendto(ngx_pid_t pid, const void *data, size_t len)
{
    socklen_t           alen;
    ngx_err_t           err;
    struct sockaddr_un  sun;

    alen = ngx_http_omni_mailbox_addr(&sun, pid);

    for ( ;; ) {
        if (sendto(ngx_http_omni_mailbox_c->fd, data, len, 0,
                   (struct sockaddr *) &sun, alen)
            != -1)
        {
            return NGX_OK;
        }

        err = ngx_socket_errno;

        switch (err) {

        case NGX_EINTR:
            continue;

        case NGX_EAGAIN:
        case ENOBUFS:
            return NGX_AGAIN;

        case ECONNREFUSED:
        case ENOENT:
            return NGX_DECLINED;

        default:
            ngx_log_error(NGX_LOG_ALERT, ngx_http_omni_mailbox_retry.log,
                          err, "omni: mailbox sendto() to worker %P failed",
                          pid);
            return NGX_ERROR;
        }
    }
}


/*
 * The outbox, every millisecond while it holds something: each waiting
 * datagram again, oldest first.  One whose receiver is still full stays,
 * and so does everything after it for the same receiver.
 */
static void
ngx_http_omni_mailbox_flush(ngx_event_t *ev)
{
    ngx_int_t              rc;
    ngx_uint_t             nfull;
    ngx_pid_t              full[8];
    ngx_uint_t             i;
    ngx_queue_t           *q, *next;
    ngx_http_omni_mail_t  *m;

    nfull = 0;

    for (q = ngx_queue_head(&ngx_http_omni_mailbox_out);
         q != ngx_queue_sentinel(&ngx_http_omni_mailbox_out);
         q = next)
    {
        next = ngx_queue_next(q);
        m = ngx_queue_data(q, ngx_http_omni_mail_t, queue);

        for (i = 0; i < nfull; i++) {
            if (full[i] == m->pid) {
                break;
            }
        }

        if (i < nfull) {
            rc = NGX_AGAIN;

        } else {
            rc = ngx_http_omni_mailbox_sendto(m->pid, m->data, m->len);
        }

        if (rc == NGX_AGAIN) {
            if ((ngx_msec_int_t) (ngx_current_msec - m->expires) < 0) {
                if (i == nfull && nfull < 8) {
                    full[nfull++] = m->pid;
                }

                continue;
            }

            ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                          "omni: worker %P read no mail within %M ms: "
                          "a result is given up", m->pid, m->timeout);
        }

        ngx_queue_remove(q);
        ngx_http_omni_mailbox_nout--;
        ngx_free(m);
    }

    if (ngx_http_omni_mailbox_nout) {
        ngx_add_timer(ev, NGX_HTTP_OMNI_MAILBOX_RETRY);
    }
}


static void
ngx_http_omni_mailbox_read(ngx_event_t *rev)
{
    ssize_t            n;
    ngx_connection_t  *c;

    static u_char      buf[NGX_HTTP_OMNI_MAILBOX_MAX];

    c = rev->data;

    for ( ;; ) {
        n = recv(c->fd, buf, sizeof(buf), 0);

        if (n == -1) {
            if (ngx_socket_errno != NGX_EAGAIN
                && ngx_socket_errno != NGX_EINTR)
            {
                ngx_log_error(NGX_LOG_ALERT, rev->log, ngx_socket_errno,
                              "omni: mailbox recv() failed");
            }

            break;
        }

        ngx_http_omni_writer_message(buf, (size_t) n);
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, rev->log, 0,
                      "omni: mailbox read event failed");
    }
}
