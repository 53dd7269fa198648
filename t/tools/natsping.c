/*
 * natsping: a small NATS JetStream client for the tests (libnats), built
 * by the Makefile as build/natsping; t/lib/OmniNats.pm wraps it.
 *
 *   natsping [OPTIONS] ping
 *   natsping [OPTIONS] add-stream NAME SUBJECT[,SUBJECT...]
 *   natsping [OPTIONS] stream-info NAME
 *   natsping [OPTIONS] --stream NAME pub SUBJECT DATA [MSGID]
 *   natsping [OPTIONS] --stream NAME dump [SUBJECT]
 *
 * OPTIONS:
 *   --urls U          comma-separated server URLs (default
 *                     nats://127.0.0.1:4222)
 *   --timeout MS      connect, request and publish-ack timeout (2000)
 *   --creds FILE      user credentials file
 *   --nkey FILE       user nkey seed file (the public key is derived)
 *   --tls-ca FILE     CA certificates; --tls-cert FILE --tls-key FILE
 *   --replicas N      add-stream: replicas (1)
 *   --max-age SEC     add-stream: MaxAge (0: none)
 *   --max-bytes N     add-stream: MaxBytes (0: none)
 *   --from SEQ        dump: the first sequence (default the stream's first)
 *   --hex             dump: the data as hex
 *   --headers         dump: a fifth column with every header
 *
 * Output:
 *   ping         "ok URL" (the server connected to)
 *   add-stream   "created NAME replicas=N" or "exists NAME replicas=N"
 *   stream-info  key=value lines: name, subjects, replicas, storage,
 *                max_age (s), max_bytes, duplicates (s), messages, bytes,
 *                first_seq, last_seq, cluster, leader, peers (the
 *                replicas with current and lag: "n2:current:0,n3:...")
 *   pub          "seq=N duplicate=0|1 stream=NAME"
 *   dump         one line per message, tab-separated:
 *                SEQ SUBJECT MSGID DATA [HEADERS]
 *                MSGID is "-" without a Nats-Msg-Id; DATA escapes '\\',
 *                tab, CR, LF and other control bytes (\\, \t, \r, \n,
 *                \xHH), or is hex with --hex; HEADERS is "K: v; K: v".
 *
 * Exit status: 0 done, 1 failure (message on stderr), 2 usage, 3 the
 * stream does not exist (stream-info, dump, pub's expected stream).
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "omni_nkey.h"


typedef struct {
    const char  *urls;
    const char  *stream;
    const char  *creds;
    const char  *nkey;
    const char  *tls_ca;
    const char  *tls_cert;
    const char  *tls_key;
    int64_t      timeout;
    int64_t      replicas;
    int64_t      max_age;
    int64_t      max_bytes;
    uint64_t     from;
    int          hex;
    int          headers;
} natsping_opts_t;


static natsping_opts_t  o = {
    .urls = "nats://127.0.0.1:4222",
    .timeout = 2000,
    .replicas = 1,
};


static void
usage(void)
{
    fprintf(stderr,
        "usage: natsping [--urls U] [--timeout MS] [--creds F | --nkey F]\n"
        "                [--tls-ca F] [--tls-cert F --tls-key F]\n"
        "       natsping ... ping\n"
        "       natsping ... [--replicas N] [--max-age SEC] [--max-bytes N]\n"
        "                    add-stream NAME SUBJECT[,SUBJECT...]\n"
        "       natsping ... stream-info NAME\n"
        "       natsping ... --stream NAME pub SUBJECT DATA [MSGID]\n"
        "       natsping ... --stream NAME [--from SEQ] [--hex] [--headers]\n"
        "                    dump [SUBJECT]\n");
    exit(2);
}


static int
fail(const char *what, natsStatus s, jsErrCode jerr)
{
    const char  *last = nats_GetLastError(NULL);

    fprintf(stderr, "natsping: %s: %s", what, natsStatus_GetText(s));
    if (jerr) {
        fprintf(stderr, " (JetStream error %d)", (int) jerr);
    }
    if (last && *last && strcmp(last, natsStatus_GetText(s)) != 0) {
        fprintf(stderr, ": %s", last);
    }
    fprintf(stderr, "\n");

    return (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) ? 3 : 1;
}


static int64_t
number(const char *s, const char *opt)
{
    char       *end;
    long long   v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v < 0) {
        fprintf(stderr, "natsping: %s: not a number: %s\n", opt, s);
        exit(2);
    }

    return v;
}


static natsStatus
connect_js(natsConnection **nc, jsCtx **js)
{
    natsStatus    s;
    natsOptions  *opts = NULL;
    jsOptions     jo;
    char          pub[OMNI_NKEY_PUBLIC_LEN + 1], err[256];
    char         *copy, *tok, *save;
    const char   *servers[16];
    int           n = 0;

    /* natsOptions_SetURL() takes one URL: a list goes to SetServers() */
    copy = strdup(o.urls);
    for (tok = strtok_r(copy, ",", &save); tok && n < 16;
         tok = strtok_r(NULL, ",", &save))
    {
        servers[n++] = tok;
    }

    s = natsOptions_Create(&opts);
    if (s == NATS_OK) {
        s = natsOptions_SetServers(opts, servers, n);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetTimeout(opts, o.timeout);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetMaxReconnect(opts, 0);
    }
    if (s == NATS_OK && o.creds) {
        s = natsOptions_SetUserCredentialsFromFiles(opts, o.creds, NULL);
    }
    if (s == NATS_OK && o.nkey) {
        if (omni_nkey_public_from_file(o.nkey, pub, err, sizeof(err)) != 0) {
            fprintf(stderr, "natsping: --nkey %s: %s\n", o.nkey, err);
            natsOptions_Destroy(opts);
            free(copy);
            exit(1);
        }
        s = natsOptions_SetNKeyFromSeed(opts, pub, o.nkey);
    }
    if (s == NATS_OK && (o.tls_ca || o.tls_cert
                         || strstr(o.urls, "tls://") != NULL))
    {
        s = natsOptions_SetSecure(opts, true);
    }
    if (s == NATS_OK && o.tls_ca) {
        s = natsOptions_LoadCATrustedCertificates(opts, o.tls_ca);
    }
    if (s == NATS_OK && o.tls_cert) {
        s = natsOptions_LoadCertificatesChain(opts, o.tls_cert, o.tls_key);
    }
    if (s == NATS_OK) {
        s = natsConnection_Connect(nc, opts);
    }
    natsOptions_Destroy(opts);
    free(copy);

    if (s != NATS_OK) {
        return s;
    }

    jsOptions_Init(&jo);
    jo.Wait = o.timeout;

    return natsConnection_JetStream(js, *nc, &jo);
}


static void
print_data(const char *p, int len)
{
    int            i;
    unsigned char  c;

    for (i = 0; i < len; i++) {
        c = (unsigned char) p[i];

        if (o.hex) {
            printf("%02x", c);
        } else if (c == '\\') {
            fputs("\\\\", stdout);
        } else if (c == '\n') {
            fputs("\\n", stdout);
        } else if (c == '\r') {
            fputs("\\r", stdout);
        } else if (c == '\t') {
            fputs("\\t", stdout);
        } else if (c < 0x20 || c == 0x7f) {
            printf("\\x%02x", c);
        } else {
            putchar(c);
        }
    }
}


static int
cmd_add_stream(jsCtx *js, const char *name, const char *subjects)
{
    natsStatus       s;
    jsErrCode        jerr = 0;
    jsStreamConfig   cfg;
    jsStreamInfo    *si = NULL;
    const char      *subj[16];
    char            *copy, *tok, *save;
    int              n = 0;

    copy = strdup(subjects);
    for (tok = strtok_r(copy, ",", &save); tok && n < 16;
         tok = strtok_r(NULL, ",", &save))
    {
        subj[n++] = tok;
    }

    jsStreamConfig_Init(&cfg);
    cfg.Name = name;
    cfg.Subjects = subj;
    cfg.SubjectsLen = n;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = o.replicas;
    cfg.MaxAge = o.max_age * 1000000000LL;
    cfg.MaxBytes = o.max_bytes ? o.max_bytes : -1;

    s = js_AddStream(&si, js, &cfg, NULL, &jerr);

    if (s != NATS_OK && jerr == JSStreamNameExistErr) {
        s = js_GetStreamInfo(&si, js, name, NULL, &jerr);
        if (s == NATS_OK) {
            printf("exists %s replicas=%lld\n", name,
                   (long long) si->Config->Replicas);
        }
    } else if (s == NATS_OK) {
        printf("created %s replicas=%lld\n", name,
               (long long) si->Config->Replicas);
    }

    free(copy);
    jsStreamInfo_Destroy(si);

    return s == NATS_OK ? 0 : fail("add-stream", s, jerr);
}


static int
cmd_stream_info(jsCtx *js, const char *name)
{
    int            i;
    natsStatus     s;
    jsErrCode      jerr = 0;
    jsStreamInfo  *si = NULL;
    jsPeerInfo    *p;

    s = js_GetStreamInfo(&si, js, name, NULL, &jerr);
    if (s != NATS_OK) {
        return fail("stream-info", s, jerr);
    }

    printf("name=%s\n", si->Config->Name);
    printf("subjects=");
    for (i = 0; i < si->Config->SubjectsLen; i++) {
        printf("%s%s", i ? "," : "", si->Config->Subjects[i]);
    }
    printf("\n");
    printf("replicas=%lld\n", (long long) si->Config->Replicas);
    printf("storage=%s\n",
           si->Config->Storage == js_MemoryStorage ? "memory" : "file");
    printf("max_age=%lld\n", (long long) (si->Config->MaxAge / 1000000000LL));
    printf("max_bytes=%lld\n", (long long) si->Config->MaxBytes);
    printf("duplicates=%lld\n",
           (long long) (si->Config->Duplicates / 1000000000LL));
    printf("messages=%llu\n", (unsigned long long) si->State.Msgs);
    printf("bytes=%llu\n", (unsigned long long) si->State.Bytes);
    printf("first_seq=%llu\n", (unsigned long long) si->State.FirstSeq);
    printf("last_seq=%llu\n", (unsigned long long) si->State.LastSeq);

    if (si->Cluster) {
        printf("cluster=%s\n", si->Cluster->Name ? si->Cluster->Name : "");
        printf("leader=%s\n", si->Cluster->Leader ? si->Cluster->Leader : "");
        printf("peers=");
        for (i = 0; i < si->Cluster->ReplicasLen; i++) {
            p = si->Cluster->Replicas[i];
            printf("%s%s:%s:%llu", i ? "," : "", p->Name,
                   p->Offline ? "offline" : p->Current ? "current" : "behind",
                   (unsigned long long) p->Lag);
        }
        printf("\n");
    }

    jsStreamInfo_Destroy(si);
    return 0;
}


static int
cmd_pub(jsCtx *js, const char *subject, const char *data, const char *id)
{
    natsStatus    s;
    jsErrCode     jerr = 0;
    jsPubOptions  po;
    jsPubAck     *pa = NULL;

    jsPubOptions_Init(&po);
    po.ExpectStream = o.stream;
    po.MsgId = id;
    po.MaxWait = o.timeout;

    s = js_Publish(&pa, js, subject, data, (int) strlen(data), &po, &jerr);
    if (s != NATS_OK) {
        return fail("pub", s, jerr);
    }

    printf("seq=%llu duplicate=%d stream=%s\n",
           (unsigned long long) pa->Sequence, pa->Duplicate ? 1 : 0,
           pa->Stream);

    jsPubAck_Destroy(pa);
    return 0;
}


static int
subject_matches(const char *filter, const char *subject)
{
    size_t  n;

    if (filter == NULL) {
        return 1;
    }

    n = strlen(filter);
    if (n >= 1 && filter[n - 1] == '>') {
        return strncmp(filter, subject, n - 1) == 0;
    }

    return strcmp(filter, subject) == 0;
}


static int
cmd_dump(jsCtx *js, const char *filter)
{
    int            i, nkeys;
    uint64_t       seq, first, last;
    natsStatus     s;
    jsErrCode      jerr = 0;
    jsStreamInfo  *si = NULL;
    natsMsg       *msg;
    const char    *id, *val, **keys;

    s = js_GetStreamInfo(&si, js, o.stream, NULL, &jerr);
    if (s != NATS_OK) {
        return fail("dump", s, jerr);
    }

    first = si->State.FirstSeq;
    last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);

    if (o.from > first) {
        first = o.from;
    }

    for (seq = first; seq && seq <= last; seq++) {
        msg = NULL;
        jerr = 0;
        s = js_GetMsg(&msg, js, o.stream, seq, NULL, &jerr);

        if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) {
            continue;                           /* deleted or expired */
        }
        if (s != NATS_OK) {
            return fail("dump", s, jerr);
        }

        if (!subject_matches(filter, natsMsg_GetSubject(msg))) {
            natsMsg_Destroy(msg);
            continue;
        }

        if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) != NATS_OK) {
            id = "-";
        }

        printf("%llu\t%s\t%s\t", (unsigned long long) seq,
               natsMsg_GetSubject(msg), id);
        print_data(natsMsg_GetData(msg), natsMsg_GetDataLength(msg));

        if (o.headers) {
            putchar('\t');
            keys = NULL;
            nkeys = 0;
            if (natsMsgHeader_Keys(msg, &keys, &nkeys) == NATS_OK) {
                for (i = 0; i < nkeys; i++) {
                    if (natsMsgHeader_Get(msg, keys[i], &val) != NATS_OK) {
                        val = "";
                    }
                    printf("%s%s: %s", i ? "; " : "", keys[i], val);
                }
                free((void *) keys);
            }
        }

        putchar('\n');
        natsMsg_Destroy(msg);
    }

    return 0;
}


int
main(int argc, char **argv)
{
    int              i, rc;
    natsStatus       s;
    natsConnection  *nc = NULL;
    jsCtx           *js = NULL;
    char             url[256];

    for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char  *opt = argv[i];

#define ARG  (i + 1 < argc ? argv[++i] : (usage(), (char *) NULL))

        if (strcmp(opt, "--urls") == 0) {
            o.urls = ARG;
        } else if (strcmp(opt, "--stream") == 0) {
            o.stream = ARG;
        } else if (strcmp(opt, "--timeout") == 0) {
            o.timeout = number(ARG, opt);
        } else if (strcmp(opt, "--creds") == 0) {
            o.creds = ARG;
        } else if (strcmp(opt, "--nkey") == 0) {
            o.nkey = ARG;
        } else if (strcmp(opt, "--tls-ca") == 0) {
            o.tls_ca = ARG;
        } else if (strcmp(opt, "--tls-cert") == 0) {
            o.tls_cert = ARG;
        } else if (strcmp(opt, "--tls-key") == 0) {
            o.tls_key = ARG;
        } else if (strcmp(opt, "--replicas") == 0) {
            o.replicas = number(ARG, opt);
        } else if (strcmp(opt, "--max-age") == 0) {
            o.max_age = number(ARG, opt);
        } else if (strcmp(opt, "--max-bytes") == 0) {
            o.max_bytes = number(ARG, opt);
        } else if (strcmp(opt, "--from") == 0) {
            o.from = (uint64_t) number(ARG, opt);
        } else if (strcmp(opt, "--hex") == 0) {
            o.hex = 1;
        } else if (strcmp(opt, "--headers") == 0) {
            o.headers = 1;
        } else {
            usage();
        }

#undef ARG
    }

    if (i >= argc) {
        usage();
    }

    argv += i;
    argc -= i;

    if (!((strcmp(argv[0], "ping") == 0 && argc == 1)
          || (strcmp(argv[0], "add-stream") == 0 && argc == 3)
          || (strcmp(argv[0], "stream-info") == 0 && argc == 2)
          || (strcmp(argv[0], "pub") == 0 && (argc == 3 || argc == 4)
              && o.stream)
          || (strcmp(argv[0], "dump") == 0 && argc <= 2 && o.stream)))
    {
        usage();
    }

    if ((o.tls_cert == NULL) != (o.tls_key == NULL)) {
        usage();
    }

    s = connect_js(&nc, &js);
    if (s != NATS_OK) {
        rc = fail("connect", s, 0);
        nats_Close();
        return rc == 3 ? 1 : rc;
    }

    if (strcmp(argv[0], "ping") == 0) {
        if (natsConnection_GetConnectedUrl(nc, url, sizeof(url)) != NATS_OK) {
            url[0] = '\0';
        }
        printf("ok %s\n", url);
        rc = 0;

    } else if (strcmp(argv[0], "add-stream") == 0) {
        rc = cmd_add_stream(js, argv[1], argv[2]);

    } else if (strcmp(argv[0], "stream-info") == 0) {
        rc = cmd_stream_info(js, argv[1]);

    } else if (strcmp(argv[0], "pub") == 0) {
        rc = cmd_pub(js, argv[1], argv[2], argc == 4 ? argv[3] : NULL);

    } else {
        rc = cmd_dump(js, argc == 2 ? argv[1] : NULL);
    }

    fflush(stdout);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();

    return rc;
}
