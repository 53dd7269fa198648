# The admin decision endpoint for email and SMS systems: the same
# decision and text as "omnictl decide", closed unless configured.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use JSON::PP ();

sub seed {
    my $store = "$OmniTest::PREFIX/store";
    my ($rc, undef, $err) = omnictl('--store', $store, 'stat', '--create');
    die $err if $rc;
    my $f = "$OmniTest::PREFIX/p.ndjson";
    open(my $fh, '>', $f) or die;
    my $t = time() - 7200;
    # cart idle for two hours: the cart-abandonment rule applies
    print $fh qq({"id":"0000000000000000000000000000c0de","visits":3,"stage":"cart","attributes":{"first_name":"Cy"},"aliases":[{"type":"customer","id":"cust 77"}],"consent":{"analytics":true,"personalize":true,"ads":true,"email":true,"sms":true},"cart":{"updated_at":$t,"items":[{"sku":"TRAIL-42","name":"Trail Runner 42","category":"shoes","qty":1,"price":129}]}}\n);
    close $fh;
    ($rc, undef, $err) = omnictl('--store', $store, 'import', $f);
    die $err if $rc;
}

sub omnictl_decide {
    my (@args) = @_;
    my ($rc, $out, $err) = omnictl('--store', "$OmniTest::PREFIX/store", 'decide',
                                   '--rules', OmniTest::repo_root() . '/rules', @args);
    die "omnictl decide: $err" if $rc;
    return $out;
}

run_blocks();

__DATA__

=== TEST 1: SMS text by customer id equals omnictl decide's
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store;
omni_rules $TEST_NGINX_ROOT/rules check=off;
--- init
main::seed();
--- config
location = /omni/admin/decide {
    allow 127.0.0.1;
    deny all;
    omni_admin_decide;
}
--- request
GET /omni/admin/decide?customer=cust%2077&channel=sms&format=text
--- response_headers
Content-Type: text/plain
Cache-Control: private, no-store
--- response_body_like: Trail Runner 42
--- check
my $cli = main::omnictl_decide('--alias', 'customer:cust 77', '--channel', 'sms',
                               '--format', 'text');
$cli .= "\n" unless $cli =~ /\n\z/;
is($resp->{content}, $cli, 'the HTTP endpoint and the CLI send the same SMS');

=== TEST 2: JSON by profile id equals omnictl decide's shown rules
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store;
omni_rules $TEST_NGINX_ROOT/rules check=off;
--- init
main::seed();
--- config
location = /omni/admin/decide { omni_admin_decide; }
--- request
GET /omni/admin/decide?profile=0000000000000000000000000000c0de&channel=email
--- check
my $http = JSON::PP::decode_json($resp->{content});
my $cli = JSON::PP::decode_json(main::omnictl_decide('--profile',
    '0000000000000000000000000000c0de', '--channel', 'email', '--format', 'json'));
is_deeply($http->{shown}, $cli->{shown}, 'same rules shown over HTTP and in the CLI');
ok(scalar @{ $http->{shown} }, 'something is shown');
is($http->{channel}, 'email', 'decided for the email channel');

=== TEST 3: bad input names the field
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store;
omni_rules $TEST_NGINX_ROOT/rules check=off;
--- config
location = /omni/admin/decide { omni_admin_decide; }
--- request
GET /omni/admin/decide?profile=xyz
--- error_code: 400
--- response_body
{"error":"expected 32 hex digits","field":"profile"}
--- request_2
GET /omni/admin/decide?profile=0000000000000000000000000000c0de&channel=fax
--- error_code_2: 400
--- response_body_2
{"error":"unknown channel","field":"channel"}
--- request_3
GET /omni/admin/decide?customer=nobody
--- error_code_3: 404
--- response_body_3
{"error":"not found","field":"customer"}
--- request_4
GET /omni/admin/decide
--- error_code_4: 400
--- response_body_4
{"error":"profile, customer, email, cookie or token is required","field":"profile"}

=== TEST 4: refused to clients the location does not allow
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store;
omni_rules $TEST_NGINX_ROOT/rules check=off;
--- config
location = /omni/admin/decide { deny all; omni_admin_decide; }
--- request
GET /omni/admin/decide?profile=0000000000000000000000000000c0de
--- error_code: 403
