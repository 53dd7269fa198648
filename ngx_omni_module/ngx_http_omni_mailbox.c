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
 */

#include "ngx_http_omni_module.h"

#include <sys/socket.h>
#include <sys/un.h>


#define NGX_HTTP_OMNI_MAILBOX_MAX  65536


static void ngx_http_omni_mailbox_read(ngx_event_t *rev);


static ngx_connection_t  *ngx_http_omni_mailbox_c;
static uint64_t           ngx_http_omni_mailbox_zone;


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

    return NGX_OK;
}


void
ngx_http_omni_mailbox_exit(void)
{
    if (ngx_http_omni_mailbox_c) {
        ngx_close_connection(ngx_http_omni_mailbox_c);
        ngx_http_omni_mailbox_c = NULL;
    }
}


ngx_int_t
ngx_http_omni_mailbox_send(ngx_pid_t pid, const void *data, size_t len)
{
    socklen_t           alen;
    struct sockaddr_un  sun;

    if (ngx_http_omni_mailbox_c == NULL) {
        return NGX_ERROR;
    }

    alen = ngx_http_omni_mailbox_addr(&sun, pid);

    if (sendto(ngx_http_omni_mailbox_c->fd, data, len, 0,
               (struct sockaddr *) &sun, alen)
        == -1)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
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
