# omni_cluster (issue 13): nginx -t validates the directive without ever
# connecting, and a node starts and serves with no NATS reachable (the
# URLs here point at ports nobody listens on).  Every invalid form is
# refused with a message naming the parameter and the file:line.
# The data path (publish, consume) is tested with real nats-server
# clusters elsewhere (t/lib/OmniNats.pm).

use strict;
use warnings;

use lib 't/lib';
use OmniTest;

# A self-signed certificate and its key, a second (unrelated) key, a
# user nkey seed (the NATS documentation's), a valid account seed (bytes
# 1..32) and a creds file.
my %FILES = (
    'cert.pem' => <<'PEM',
-----BEGIN CERTIFICATE-----
MIIBfzCCASWgAwIBAgIUWdobKxf4Kyb9iNJ2gw5uIF9TQW4wCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJMTI3LjAuMC4xMCAXDTI2MTIwNjE0NTExOVoYDzIxMjYxMTEy
MTQ1MTE5WjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAARQoa3f7q/sQNyNPIu5q3gCyRHQYFiX3i+5GBbwZD+ORFuXc6FbouNU
PTukFPFH9Lqasgztfs5CEdrx1vEsw+Zho1MwUTAdBgNVHQ4EFgQUSckXnJlLXzf8
BSU9YGKuBhWwXYQwHwYDVR0jBBgwFoAUSckXnJlLXzf8BSU9YGKuBhWwXYQwDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiBI7J78kSEav8rEFsaAEKm0
KJEu2aYx1IMQvHuDUSo8UAIhAJafnsEqy4+/O070AW0GeVM/kE6VjP22BWBGu5mC
NfNa
-----END CERTIFICATE-----
PEM
    'key.pem' => <<'PEM',
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgyHcBr+9qWLGy9M+K
Q4gMJqy7I3ZsdkhOf5KkIBbPZNShRANCAARQoa3f7q/sQNyNPIu5q3gCyRHQYFiX
3i+5GBbwZD+ORFuXc6FbouNUPTukFPFH9Lqasgztfs5CEdrx1vEsw+Zh
-----END PRIVATE KEY-----
PEM
    'other-key.pem' => <<'PEM',
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgf6De6GqlHFtHGZr5
ITQ8ezXXQxaGwanoXbjpMIli2E+hRANCAARkPs5WZZhW16+jvjtUd7prDioooDHO
sBHJ1wpXjbSIv+CDL9/877tnAUWruokOr2LdXz3fRHFUsZmmZ1szTQgD
-----END PRIVATE KEY-----
PEM
    'user.nk' => "SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY\n",
    'account.nk' => "SAAACAQDAQCQMBYIBEFAWDANBYHRAEISCMKBKFQXDAMRUGY4DUPB6IFO3A\n",
    'user.creds' => <<'CREDS',
-----BEGIN NATS USER JWT-----
eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJVRFhVNFJDU0pOWk9JUUhaTldYSFhPUkRQUlRHTkpBSEFIRlJHWk5FRUpDUFFUVDJNN05MQ05GNCJ9.x
------END NATS USER JWT------

-----BEGIN USER NKEY SEED-----
SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY
------END USER NKEY SEED------
CREDS
    'empty' => '',
    'not-creds' => "user: alice\n",
);

sub write_files {
    for my $name (keys %FILES) {
        my $path = "$OmniTest::PREFIX/conf/$name";
        open my $fh, '>', $path or die "$path: $!";
        print $fh $FILES{$name};
        close $fh;
    }
    mkdir "$OmniTest::PREFIX/conf/a-dir";
}

run_blocks();

__DATA__

=== TEST 1: the smallest cluster configuration passes nginx -t and starts with no NATS running
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1;
--- config
location = /t { return 200 "up"; }
location / { omni on; return 200 "page $omni_visitor"; }
--- request
GET /t
--- response_body: up
--- request_2
GET /page
--- response_body_like_2: ^page [0-9a-f]{32}$
--- timeout: 2

=== TEST 2: every parameter, three servers, relative file names (the conf directory)
--- init
write_files();
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1,nats://localhost:2,nats://[::1]:3
             node=Web_2-eu stream=omni-prod creds=user.creds
             tls_ca=cert.pem tls_cert=cert.pem tls_key=key.pem
             replicas=5 max_age=12h max_bytes=0 timeout=500ms flush=0 compress=off;
--- config
location = /t { return 200 "up"; }
--- request
GET /t
--- response_body: up

=== TEST 3: tls:// URLs, an nkey seed file (absolute path), max_bytes and max_age of their own
--- init
write_files();
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster tls://127.0.0.1:1 TLS://127.0.0.1:2 node=n3
             nkey=$TEST_NGINX_PREFIX/conf/user.nk max_bytes=64m max_age=0
             replicas=1;
--- config
location = /t { return 200 "up"; }
--- request
GET /t
--- response_body: up

=== TEST 4: order does not matter: omni_store after omni_cluster, in an include
--- http_config
omni_cluster nats://127.0.0.1:1 node=web-4;
include store.conf;
--- user_files
>>> conf/store.conf
omni_store $TEST_NGINX_PREFIX/store;
--- config
location = /t { return 200 "up"; }
--- request
GET /t
--- response_body: up

=== TEST 5: omni_cluster requires omni_store, naming the omni_cluster's file:line
--- http_config
include cluster.conf;
--- user_files
>>> conf/cluster.conf

omni_cluster nats://127.0.0.1:1 node=web-1;
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] "omni_cluster" requires "omni_store" \(each node's local copy of the stream\) in \S+\/conf\/cluster\.conf:2$/m

=== TEST 6: no URL
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster node=web-1 stream=OMNI;
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] invalid "omni_cluster": no NATS server URL \(nats:\/\/host:port\[,nats:\/\/host:port\.\.\.\]\) in \S+\/conf\/nginx\.conf:\d+$/m

=== TEST 7: node= is required
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 stream=OMNI;
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] invalid "omni_cluster": node= is required \(this nginx's name in the cluster, unique, \[A-Za-z0-9_-\], at most 32 characters\) in \S+\/conf\/nginx\.conf:\d+$/m

=== TEST 8: a URL that is not nats:// or tls://
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1,http://127.0.0.1:2 node=web-1;
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] invalid "omni_cluster" URL "http:\/\/127\.0\.0\.1:2": the scheme must be nats:\/\/ or tls:\/\/ in \S+\/conf\/nginx\.conf:\d+$/m

=== TEST 9: a bare host:port is not a URL
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster 127.0.0.1:4222 node=web-1;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" parameter "127.0.0.1:4222": neither a URL (nats://host:port or tls://host:port) nor name=value

=== TEST 10: no port
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://nats-1.example.com node=web-1;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" URL "nats://nats-1.example.com": no port (nats://host:4222)

=== TEST 11: port 0
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:0 node=web-1;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" URL "nats://127.0.0.1:0": the port must be 1 to 65535, nothing after it

=== TEST 12: port 65536
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:65536 node=web-1;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" URL "nats://127.0.0.1:65536": the port must be 1 to 65535, nothing after it

=== TEST 13: something after the port
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:4222/x node=web-1;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" URL "nats://127.0.0.1:4222/x": the port must be 1 to 65535, nothing after it

=== TEST 14: no host
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://:4222 node=web-1;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" URL "nats://:4222": no host (nats://host:4222, tls://host:4222, nats://[::1]:4222)

=== TEST 15: a broken IPv6 literal
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://[::1:4222 node=web-1;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" URL "nats://[::1:4222": no host

=== TEST 16: a host name with a character no host name has
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://nats!1:4222 node=web-1;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" URL "nats://nats!1:4222": a host name then a port, nothing else (nats://host:4222)

=== TEST 17: the same server twice (host names compared caselessly), in two arguments
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://NATS-1:4222,nats://nats-2:4222 nats://nats-1:4222 node=web-1;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" URL "nats://nats-1:4222": given twice

=== TEST 18: a user and password in a URL
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://omni:s3cret@127.0.0.1:4222 node=web-1;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" URL "nats://omni:s3cret@127.0.0.1:4222": no user or password in a URL (they would be logged); use creds= or nkey=

=== TEST 19: an empty item in the list
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1,,nats://127.0.0.1:2 node=web-1;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" URL list "nats://127.0.0.1:1,,nats://127.0.0.1:2": an empty item

=== TEST 20: a trailing comma
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1, node=web-1;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" URL list "nats://127.0.0.1:1,": an empty item

=== TEST 21: nats:// and tls:// mixed
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1,tls://127.0.0.1:2 node=web-1;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" URLs: nats:// and tls:// mixed; TLS is for every connection or none

=== TEST 22: a node name with a dot
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web.1;
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] invalid "omni_cluster" parameter "node=web\.1": node must be 1 to 32 of A-Z, a-z, 0-9, '_' and '-' in \S+\/conf\/nginx\.conf:\d+$/m

=== TEST 23: an empty node name
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" parameter "node=": node must be 1 to 32 of A-Z, a-z, 0-9, '_' and '-'

=== TEST 24: a node name of 33 characters
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=abcdefghijklmnopqrstuvwxyz0123456;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" parameter "node=abcdefghijklmnopqrstuvwxyz0123456": node must be 1 to 32

=== TEST 25: a stream name with a wildcard
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1 stream=OMNI.*;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" parameter "stream=OMNI.*": stream must be 1 to 32 of A-Z, a-z, 0-9, '_' and '-'

=== TEST 26: an unknown parameter
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1 replica=3;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" parameter "replica=3": unknown (node=, stream=, creds=, nkey=, tls_ca=, tls_cert=, tls_key=, replicas=, max_age=, max_bytes=, timeout=, flush=, compress=)

=== TEST 27: a parameter given twice
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1 node=web-2;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" parameter "node=web-2": node= is given twice

=== TEST 28: replicas=0
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1 replicas=0;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" parameter "replicas=0": replicas must be 1 to 5 (JetStream's limit; 3 on a 3-server cluster)

=== TEST 29: replicas=6
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1 replicas=6;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" parameter "replicas=6": replicas must be 1 to 5

=== TEST 30: max_age that is not a time
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1 max_age=week;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" parameter "max_age=week": max_age must be a time (7d, 12h, ...; 0: no limit)

=== TEST 31: max_bytes that is not a size
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1 max_bytes=1t;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" parameter "max_bytes=1t": max_bytes must be a size (1g, 500m, ...; 0: no limit)

=== TEST 32: max_bytes below 1m
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1 max_bytes=512k;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" parameter "max_bytes=512k": max_bytes must be at least 1m (or 0: no limit)

=== TEST 33: timeout=0
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1 timeout=0;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" parameter "timeout=0": timeout must be a time above zero (2s, 500ms, ...)

=== TEST 33a: flush= beyond 10s
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1 flush=1m;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" parameter "flush=1m": flush must be a time from 0 to 10s (100ms, 25ms, ...)

=== TEST 33b: compress= neither on nor off
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1 compress=zstd;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" parameter "compress=zstd": compress must be "on" or "off"

=== TEST 33c: compress= given twice
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1 compress=on compress=off;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" parameter "compress=off": compress= is given twice

=== TEST 34: a creds file that does not exist, named with its full path and the system's reason
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1 creds=missing.creds;
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] invalid "omni_cluster" parameter creds=: cannot read "\S+\/conf\/missing\.creds" \(2: No such file or directory\) in \S+\/conf\/nginx\.conf:\d+$/m

=== TEST 35: a creds file that is not one
--- init
write_files();
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1 creds=not-creds;
--- config
location = /t { return 200; }
--- must_die
qr/invalid "omni_cluster" parameter creds=: "\S+\/conf\/not-creds" is not a NATS credentials file \(a user JWT and its nkey seed, as nsc generate creds writes\)/

=== TEST 36: an empty creds file, and a directory
--- init
write_files();
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1 creds=empty;
--- config
location = /t { return 200; }
--- must_die
qr/invalid "omni_cluster" parameter creds=: "\S+\/conf\/empty" is not a regular file of 1 byte to 1 MB/

=== TEST 37: a directory as the CA file
--- init
write_files();
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster tls://127.0.0.1:1 node=web-1 tls_ca=a-dir;
--- config
location = /t { return 200; }
--- must_die
qr/invalid "omni_cluster" parameter tls_ca=: "\S+\/conf\/a-dir" is not a regular file of 1 byte to 1 MB/

=== TEST 38: creds= and nkey= together
--- init
write_files();
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1 creds=user.creds nkey=user.nk;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" parameters creds= and nkey=: one or the other (a creds file holds its own nkey seed)

=== TEST 39: an nkey file without a seed
--- init
write_files();
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1 nkey=cert.pem;
--- config
location = /t { return 200; }
--- must_die
qr/invalid "omni_cluster" parameter nkey=: "\S+\/conf\/cert\.pem": no nkey seed in it \(a line of 58 characters starting with "SU", as "nk -gen user" writes\)/

=== TEST 40: an account seed is not a user seed
--- init
write_files();
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1 nkey=account.nk;
--- config
location = /t { return 200; }
--- must_die
qr/invalid "omni_cluster" parameter nkey=: "\S+\/conf\/account\.nk": the nkey seed is not a user seed \("SU\.\.\."\); a client connects with a user nkey/

=== TEST 41: tls_cert= without tls_key=
--- init
write_files();
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster tls://127.0.0.1:1 node=web-1 tls_cert=cert.pem;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" parameter tls_cert= without tls_key=: a client certificate needs its key

=== TEST 42: tls_key= without tls_cert=
--- init
write_files();
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster tls://127.0.0.1:1 node=web-1 tls_key=key.pem;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" parameter tls_key= without tls_cert=: a client certificate needs its key

=== TEST 43: a key that is not the certificate's
--- init
write_files();
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster tls://127.0.0.1:1 node=web-1 tls_cert=cert.pem tls_key=other-key.pem;
--- config
location = /t { return 200; }
--- must_die
qr/invalid "omni_cluster" parameter tls_key=: "\S+\/conf\/other-key\.pem" is not the key of tls_cert= "\S+\/conf\/cert\.pem"/

=== TEST 44: a CA file that holds no certificate
--- init
write_files();
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster tls://127.0.0.1:1 node=web-1 tls_ca=key.pem;
--- config
location = /t { return 200; }
--- must_die
qr/invalid "omni_cluster" parameter tls_ca=: "\S+\/conf\/key\.pem": no PEM certificate/

=== TEST 45: a key file that holds no key
--- init
write_files();
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster tls://127.0.0.1:1 node=web-1 tls_cert=cert.pem tls_key=cert.pem;
--- config
location = /t { return 200; }
--- must_die
qr/invalid "omni_cluster" parameter tls_key=: "\S+\/conf\/cert\.pem": no unencrypted PEM private key/

=== TEST 46: omni_cluster twice
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1;
omni_cluster nats://127.0.0.1:2 node=web-1;
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] "omni_cluster" directive is duplicate in \S+\/conf\/nginx\.conf:\d+$/m

=== TEST 47: omni_cluster in a server block
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
--- config
omni_cluster nats://127.0.0.1:1 node=web-1;
location = /t { return 200; }
--- must_die
"omni_cluster" directive is not allowed here

=== TEST 48: one argument only
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1;
--- config
location = /t { return 200; }
--- must_die
invalid number of arguments in "omni_cluster" directive

=== TEST 49: a file parameter without a file
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1 creds=;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" parameter "creds=": no file

=== TEST 50: replicas= without a number
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
omni_cluster nats://127.0.0.1:1 node=web-1 replicas=;
--- config
location = /t { return 200; }
--- must_die
invalid "omni_cluster" parameter "replicas=": replicas must be 1 to 5
