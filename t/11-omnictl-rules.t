# omnictl rules check and omnictl decide, end to end: the repository's
# rules/ and broken rule directories; decisions for crafted profiles in a
# real store (imported with omnictl import) for the seed scenarios, in
# every output format, with --explain, determinism and usage errors.
# Run from the repository root (prove does); OMNI_OMNICTL names another
# omnictl binary.

use strict;
use warnings;

use File::Temp ();
use JSON::PP   ();
use Test::More;

my $CTL = $ENV{OMNI_OMNICTL} // 'build/omnictl';

plan skip_all => "$CTL is not built (make omnictl)" unless -x $CTL;

delete @ENV{qw(OMNI_STORE OMNI_SECRET)};

my $TMP   = File::Temp->newdir('omnictl-rules-XXXXXX', TMPDIR => 1);
my $JSON  = JSON::PP->new->canonical;
my $RULES = 'rules';
my $n     = 0;

# 2025-11-23 12:53:20 UTC, the time of every decision below
my $NOW  = 1763902400;
my $HOUR = 3600;
my $DAY  = 86400;

# run(ARGS) -> (exit code, stdout, stderr)
sub ctl {
    my (@args) = @_;

    my $base = "$TMP/run" . ++$n;
    my $pid  = fork // die "fork: $!";

    if ($pid == 0) {
        open STDIN,  '<', '/dev/null'  or die;
        open STDOUT, '>', "$base.out" or die;
        open STDERR, '>', "$base.err" or die;
        exec $CTL, @args or exit 127;
    }

    waitpid $pid, 0;

    return ($? & 127 ? 128 + ($? & 127) : $? >> 8,
            read_file("$base.out"), read_file("$base.err"));
}

sub write_file {
    my ($path, $data) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $data;
    close $fh;
}

sub read_file {
    my ($path) = @_;
    open my $fh, '<', $path or die "$path: $!";
    local $/;
    my $d = <$fh>;
    return $d // '';
}

sub decode_json_ok {
    my ($text, $name) = @_;
    my $v = eval { $JSON->decode($text) };
    ok(defined $v, "$name: output is JSON") or diag("output: $text\n$@");
    return $v // {};
}

sub id { sprintf '%032x', shift }


# --- rules check: the repository's rules ------------------------------------

my @seed_files = glob "$RULES/*.json";

{
    my ($rc, $out, $err) = ctl('rules', 'check', $RULES);
    is($rc, 0, 'rules check rules/: exit 0') or diag $err;
    is($out, sprintf("%s: 11 rules in %d files, OK\n", $RULES,
                     scalar @seed_files),
       'rules check rules/: the summary counts rules and files');
    is($err, '', 'rules check rules/: nothing on stderr');

    ($rc, $out, $err) = ctl('rules', 'check', $RULES, '--json');
    is($rc, 0, 'rules check --json: exit 0');
    my $j = decode_json_ok($out, 'rules check --json');
    is_deeply($j, { dir => $RULES, ok => JSON::PP::true,
                    files => scalar @seed_files, rules => 11,
                    errors => [] },
              'rules check --json: dir, ok, files, rules, errors');
    is($err, '', 'rules check --json: nothing on stderr');
}


# --- rules check: a broken directory ----------------------------------------

my $BAD = "$TMP/bad-rules";
mkdir $BAD or die;

write_file("$BAD/a-unknown.json", <<'EOF');
{
  "id": "broken-key",
  "priority": 5,
  "colour": "red",
  "banner": {"slot": "hero", "html": "<p>x</p>", "size": 3}
}
EOF

write_file("$BAD/b-syntax.json", <<'EOF');
{
  "id": "broken-syntax",
  "banner": {"slot": "hero", "html": "<p>y</p>",}
}
EOF

write_file("$BAD/c-good.json",
           '{"id": "fine", "banner": {"slot": "hero", "html": "ok"}}' . "\n");
write_file("$BAD/notes.txt", "not a rule file\n");
write_file("$BAD/.hidden.json", "{ garbage\n");

my @bad_lines = (
    qq{$BAD/a-unknown.json:4:3: colour: unknown key "colour" in rule},
    qq{$BAD/a-unknown.json:5:50: banner.size: unknown key "size" in banner},
    qq[$BAD/b-syntax.json:3:49: string or '}' expected near '}'],
);

{
    my ($rc, $out, $err) = ctl('rules', 'check', $BAD);
    is($rc, 1, 'rules check, broken files: exit 1');
    is($err, join('', map { "$_\n" } @bad_lines),
       'rules check: every error as file:line:column: message, verbatim')
        or diag $err;
    is($out, "$BAD: 3 error(s)\n", 'rules check: the error count');

    ($rc, $out, $err) = ctl('rules', 'check', '--json', $BAD);
    is($rc, 1, 'rules check --json, broken files: exit 1');
    my $j = decode_json_ok($out, 'rules check --json, broken');
    is_deeply($j, { dir => $BAD, ok => JSON::PP::false, files => 3,
                    rules => 1, errors => \@bad_lines },
              'rules check --json: the same lines in "errors"');
    is($err, '', 'rules check --json: nothing on stderr');

    # decide refuses rules nginx would refuse, with the same lines
    ($rc, $out, $err) = ctl('--store', "$TMP/none", 'decide', '--profile',
                            id(1), '--rules', $BAD);
    ok($rc == 2 && $out eq ''
       && index($err, join('', map { "$_\n" } @bad_lines)) == 0
       && $err =~ /^omnictl: decide: cannot load the rules in /m,
       'decide with invalid rules: exit 2, the errors on stderr')
        or diag $err;
}

{
    my $EMPTY = "$TMP/empty-rules";
    mkdir $EMPTY or die;

    my ($rc, $out) = ctl('rules', 'check', $EMPTY);
    ok($rc == 0 && $out eq "$EMPTY: 0 rules in 0 files, OK\n",
       'rules check of an empty directory: OK, as nginx accepts it');

    my $err;
    ($rc, $out, $err) = ctl('rules', 'check', "$TMP/no-such-dir");
    ok($rc == 2 && $out eq ''
       && $err =~ /^\Q$TMP\E\/no-such-dir: cannot open directory: /,
       'rules check of a missing directory: exit 2') or diag $err;

    ($rc, $out) = ctl('rules', 'check', '--json', "$TMP/no-such-dir");
    my $j = $rc == 2 ? decode_json_ok($out, 'missing directory --json') : {};
    ok($rc == 2 && !$j->{ok} && @{ $j->{errors} || [] } == 1,
       'rules check --json of a missing directory: exit 2, one error');

    ($rc, undef, $err) = ctl('rules', 'check', "$BAD/c-good.json");
    is($rc, 2, 'rules check of a file: exit 2');

    ($rc, undef, $err) = ctl('rules', 'check');
    ok($rc == 2 && $err =~ /missing argument/, 'rules check without DIR: 2');

    ($rc, undef, $err) = ctl('rules', 'lint', $RULES);
    ok($rc == 2 && $err =~ /unknown rules command "lint"/,
       'rules with an unknown subcommand: exit 2');

    ($rc) = ctl('rules', 'check', $RULES, 'extra');
    is($rc, 2, 'rules check with an extra argument: exit 2');

    ($rc, undef, $err) = ctl('rules', 'check', $RULES, '--explain');
    ok($rc == 2 && $err =~ /--explain is not valid for rules/,
       'rules check --explain: exit 2');
}


# --- decide: the store -------------------------------------------------------

my $S = "$TMP/store";

{
    my ($rc, undef, $err) = ctl('--store', $S, 'stat', '--create');
    is($rc, 0, 'stat --create') or diag $err;
}

# decide(ARGS) against $S and rules/ at $NOW
sub decide {
    return ctl('--store', $S, 'decide', '--rules', $RULES, '--now', $NOW,
               @_);
}

# The first id from $k on that is (or is not) in the global holdout of
# rules/00-holdout.json (10% of profiles see nothing, by profile id).
sub pick_id {
    my ($k, $held) = @_;

    for (1 .. 200) {
        my ($rc, $out) = decide('--profile', id($k));
        die "decide failed for " . id($k) if $rc != 0;
        return id($k) if !!$JSON->decode($out)->{holdout} == !!$held;
        $k++;
    }

    die "no id found";
}

my %P;      # scenario => profile id, none of them held out
my $next = 0x100;

for my $name (qw(new cart recent loyal bought viewer story consent
                 cookie)) {
    $P{$name} = pick_id($next, 0);
    $next = hex($P{$name}) + 1;
}

my $HELD = pick_id(0x1000, 1);

sub profile {
    my ($name, %p) = @_;
    return $JSON->encode({ id => $P{$name}, created => $NOW - 90 * $DAY,
                           %p }) . "\n";
}

{
    my $ndjson =
        # a cart idle for 2 hours (2 lines; the Trail Runner is the most
        # valuable), signed in as cust-1001
        profile('cart', visits => 2,
                attributes => { first_name => 'Ana' },
                aliases => [ { type => 'customer', id => 'cust-1001' } ],
                cart => { updated_at => $NOW - 2 * $HOUR, items => [
                    { sku => 'SOCK-3', name => 'Merino socks', qty => 1,
                      price => 19 },
                    { sku => 'TRAIL-42', name => 'Trail Runner 42', qty => 1,
                      price => 129, url => '/product/trail-42.html' } ] })
        # the same cart, changed 20 minutes ago
      . profile('recent', visits => 2,
                cart => { updated_at => $NOW - 20 * 60, items => [
                    { sku => 'TRAIL-42', qty => 1, price => 129 } ] })
        # loyal: 6 orders and an abandoned cart
      . profile('loyal', visits => 31, orders => 6,
                attributes => { first_name => 'Bob' },
                aliases => [ { type => 'email', id => 'bob@example.com' } ],
                cart => { updated_at => $NOW - 5 * $HOUR, items => [
                    { sku => 'TRAIL-42', qty => 1, price => 129 } ] })
        # bought the advertised Summit Pro at the POS after viewing it
      . profile('bought', visits => 5, orders => 2,
                attributes => { first_name => 'Eva' },
                purchases => [
                    { sku => 'SOCK-3', channel => 'web',
                      time => $NOW - 100 * $DAY },
                    { sku => 'SUMMIT-PRO', order_id => 'pos-77',
                      channel => 'pos', time => $NOW - 600,
                      category => 'jackets', price => 349, qty => 1 } ],
                views => [ { sku => 'SUMMIT-PRO', category => 'premium',
                             time => $NOW - $DAY, price => 349 } ])
        # viewed the Summit Pro and did not buy it
      . profile('viewer', visits => 5, orders => 1,
                purchases => [ { sku => 'SOCK-3', channel => 'web',
                                 time => $NOW - 100 * $DAY } ],
                views => [ { sku => 'SUMMIT-PRO', category => 'premium',
                             time => $NOW - $DAY, price => 349 } ])
        # 8 days without engagement
      . profile('story', visits => 4,
                attributes => { first_name => 'Dan' },
                views => [ { sku => 'TRAIL-42', time => $NOW - 8 * $DAY,
                             price => 129 } ])
        # the same cart as 'cart', but no SMS consent
      . profile('consent', visits => 2,
                consent => { personalize => JSON::PP::true,
                             email => JSON::PP::true,
                             sms => JSON::PP::false },
                cart => { updated_at => $NOW - 2 * $HOUR, items => [
                    { sku => 'TRAIL-42', name => 'Trail Runner 42', qty => 1,
                      price => 129 } ] })
        # a visitor whose profile id is its cookie id (no cookie alias)
      . profile('cookie', visits => 1, created => $NOW - $DAY,
                attributes => { first_name => 'Chloe' });

    write_file("$TMP/profiles.ndjson", $ndjson);

    my ($rc, undef, $err) = ctl('--store', $S, 'import',
                                "$TMP/profiles.ndjson");
    is($rc, 0, 'import of the scenario profiles') or diag $err;
}


# the decision as JSON, decoded
sub decision {
    my ($name, @args) = @_;

    my ($rc, $out, $err) = decide(@args);
    is($rc, 0, "$name: exit 0") or diag $err;
    return decode_json_ok($out, $name);
}

sub hero { ($_[0]{slots}{hero} || {})->{rule} // '' }


# --- decide: a new visitor --------------------------------------------------

{
    my $d = decision('new visitor', '--profile', $P{new});

    ok(!$d->{holdout} && !defined $d->{blocked} && $d->{channel} eq 'web',
       'new visitor: web, not held out, not blocked');
    is(hero($d), 'welcome-offer', 'new visitor: the welcome offer');
    is($d->{slots}{hero}{payload}{code}, 'WELCOME100',
       'new visitor: the payload carries the code');
    like($d->{slots}{hero}{html},
         qr/^<div class="omni omni-welcome"><p>Welcome, friend! Take <strong>\$100 off<\/strong>/,
         'new visitor: the banner HTML with the default name');
    is($d->{slots}{topbar}{rule}, 'free-shipping-bar',
       'new visitor: the free shipping bar');
    is_deeply([ map { $_->{rule} } @{ $d->{shown} } ],
              [ 'welcome-offer', 'free-shipping-bar' ],
              'new visitor: shown, in rank order');
    is_deeply($d->{pixels}, [], 'new visitor: no pixels');

    # a missing profile and a profile id never seen are the same thing
    my ($rc, $out) = decide('--profile', $P{new});
    my ($rc2, $out2) = decide('--profile',
                              join '-', unpack 'A8 A4 A4 A4 A12', $P{new});
    ok($rc == 0 && $rc2 == 0 && $out eq $out2,
       'new visitor: a UUID names the same profile id');

    $d = decision('new visitor, app', '--profile', $P{new},
                  '--channel', 'app');
    ok(hero($d) eq 'welcome-offer' && !exists $d->{slots}{topbar},
       'new visitor, app: the offer, no web-only bar');

    ($rc, $out, my $err) = decide('--profile', $P{new}, '--channel', 'sms');
    ok($rc == 0 && $out eq '' && $err eq '',
       'new visitor, SMS: nothing to send, no output, exit 0');
}


# --- decide: cart abandonment ------------------------------------------------

{
    my $d = decision('cart', '--alias', 'customer:cust-1001');
    my $hero = $d->{slots}{hero} || {};

    is($hero->{rule}, 'cart-abandon', 'cart idle 2h: the cart banner');
    like($hero->{html},
         qr/Still thinking about the <strong>Trail Runner 42<\/strong>, Ana\?/,
         'cart: the banner names the most valuable item and the person');
    like($hero->{html}, qr/href="\/product\/trail-42.html"/,
         'cart: and links to it');
    is_deeply($hero->{payload}, { type => 'cart', sku => 'TRAIL-42',
                                  value => '148.00', theme => 'discount',
                                  title => 'Your Trail Runner 42 is waiting' },
              'cart: the payload');
    is_deeply($d->{pixels},
              [ { type => 'img', url => 'https://ads.example.com/rt?'
                  . 'event=cart_abandon&sku=TRAIL-42&value=148.00' } ],
              'cart: one pixel, carrying the sku');

    my $by_id = decision('cart by id', '--profile', $P{cart});
    is_deeply($by_id, $d, 'cart: --alias and --profile decide the same');

    my ($rc, $out, $err) = decide('--alias', 'customer:cust-1001',
                                  '--channel', 'sms');
    is($rc, 0, 'cart, SMS: exit 0');
    is($out, "Ana, your Trail Runner 42 is still waiting: "
             . "https://shop.example.com/cart\n",
       'cart, SMS: the text of the same decision');
    is($err, '', 'cart, SMS: nothing on stderr');

    ($rc, $out) = decide('--alias', 'customer:cust-1001', '--channel',
                         'email');
    is($out, "Ana, your Trail Runner 42 is still waiting: "
             . "https://shop.example.com/cart\n",
       'cart, email: every slot for email (one here)');

    ($rc, $out) = decide('--alias', 'customer:cust-1001', '--channel',
                         'sms', '--format', 'json');
    my $j = $rc == 0 ? decode_json_ok($out, 'cart, SMS as JSON') : {};
    is($j->{channel}, 'sms', 'cart, SMS: --format json overrides the text');

    ($rc, $out) = decide('--alias', 'customer:cust-1001', '--format',
                         'html');
    is($out,
       "<!-- slot aside -->\n\n"
       . "<!-- slot hero -->\n"
       . '<div class="omni omni-cart"><p>Still thinking about the '
       . '<strong>Trail Runner 42</strong>, Ana?</p><a class="omni-cta" '
       . 'href="/product/trail-42.html">Complete my order</a></div>' . "\n"
       . "<!-- slot topbar -->\n"
       . '<div class="omni omni-bar">Free shipping on orders over $50</div>'
       . "\n<!-- pixels -->\n"
       . '<img src="https://ads.example.com/rt?event=cart_abandon&amp;'
       . 'sku=TRAIL-42&amp;value=148.00" width="1" height="1" alt="">' . "\n",
       'cart, html: every slot of the set, then the pixels');

    $d = decision('cart changed 20 min ago', '--profile', $P{recent});
    ok(hero($d) eq '' && @{ $d->{pixels} } == 0,
       'cart changed 20 minutes ago: no cart banner yet, no pixel');
}


# --- decide: loyal, purchased, story, showroom ------------------------------

{
    my $d = decision('loyal', '--alias', 'email:Bob@Example.com',
                     '--explain');

    is(hero($d), 'vip-lounge', 'loyal (6 orders): the VIP message');
    is($d->{headers}{'X-Omni-Theme'}, 'vip', 'loyal: the VIP theme header');
    ok(!grep({ exists $_->{payload}{discount} || exists $_->{payload}{code} }
             values %{ $d->{slots} })
       && !grep({ $_->{rule} eq 'cart-abandon' } @{ $d->{shown} })
       && @{ $d->{pixels} } == 0,
       'loyal: no discount anywhere, not even the cart one');
    ok((grep { $_ eq 'cart-abandon: lost: slot hero went to vip-lounge' }
        @{ $d->{explanation} || [] })
       && (grep { /^holdout: not in "global-holdout-1"/ }
           @{ $d->{explanation} || [] })
       && (grep { $_ eq 'vip-lounge: shown in slot hero' }
           @{ $d->{explanation} || [] }),
       'loyal --explain: the explanation says why')
        or diag explain $d->{explanation};

    my ($rc, $out) = decide('--alias', 'email:bob@example.com',
                            '--channel', 'email');
    is($out, "Bob, your VIP lounge is open: early access and free express "
             . "delivery.\n", 'loyal, email: the VIP text');

    $d = decision('bought', '--profile', $P{bought});
    is(hero($d), 'review-request',
       'bought the advertised sku: the review request instead');
    like($d->{slots}{hero}{html},
         qr/How do you like your <strong>Summit Pro jacket<\/strong>, Eva\?/,
         'bought: the review request names the purchase (catalog name)');
    ok(!grep({ $_->{url} =~ /SUMMIT-PRO/ } @{ $d->{pixels} })
       && !grep({ $_->{rule} =~ /^summit-/ } @{ $d->{shown} }),
       'bought: no ad and no pixel for the sku bought (at the POS)');

    ($rc, $out) = decide('--profile', $P{bought}, '--channel', 'sms');
    is($out, "How do you like your Summit Pro jacket? Review it: "
             . "https://shop.example.com/reviews/new?sku=SUMMIT-PRO\n",
       'bought, SMS: the review request');

    $d = decision('viewer', '--profile', $P{viewer});
    is(hero($d), 'summit-promo', 'viewed and not bought: the promotion');
    is_deeply([ sort map { $_->{url} } @{ $d->{pixels} } ],
              [ 'https://ads.example.com/rt?event=interest&sku=SUMMIT-PRO&p='
                . $P{viewer},
                'https://ads.example.com/rt?event=promo&sku=SUMMIT-PRO',
                'https://tags.example.com/retarget.js?sku=SUMMIT-PRO' ],
              'viewed: the retargeting pixels, with the profile id');

    $d = decision('story', '--profile', $P{story});
    ok(hero($d) eq 'theme-story'
       && $d->{headers}{'X-Omni-Theme'} eq 'story',
       '8 days without engagement: the story and its theme');

    $d = decision('showroom', '--profile', $P{new}, '--geo-country', 'pt',
                  '--geo-latlon', '41.1579,-8.6291');
    is($d->{slots}{aside}{rule}, 'showroom-invite',
       'showroom: --geo-latlon within 25 km of Porto');
    like($d->{slots}{aside}{html},
         qr/Try it on at our <strong>Porto Aliados<\/strong> showroom, 1\.8 km from you\./,
         'showroom: names the nearest store and the distance');

    $d = decision('no geo', '--profile', $P{new});
    ok(!exists $d->{slots}{aside}, 'showroom: no geo, no invitation');

    $d = decision('madrid', '--profile', $P{new}, '--geo-latlon',
                  '40.4168,-3.7038');
    ok(!exists $d->{slots}{aside}, 'showroom: not in Madrid');
}


# --- decide: holdout, consent, aliases -------------------------------------

{
    my $d = decision('held out', '--profile', $HELD, '--explain');
    ok($d->{holdout} && $d->{blocked} eq 'holdout'
       && !%{ $d->{slots} } && !@{ $d->{pixels} } && !@{ $d->{shown} },
       'a held-out profile sees nothing');
    ok((grep { /^holdout: in "global-holdout-1"/ } @{ $d->{explanation} })
       && (grep { $_ eq 'welcome-offer: skipped: holdout' }
           @{ $d->{explanation} }),
       'held out: the explanation says so');

    my ($rc, $out) = decide('--profile', $HELD, '--channel', 'email');
    ok($rc == 0 && $out eq '', 'held out, email: no text');

    ($rc, $out) = decide('--profile', $P{consent}, '--channel', 'sms');
    ok($rc == 0 && $out eq '', 'no SMS consent: no SMS text');

    $d = decision('no SMS consent, JSON', '--profile', $P{consent},
                  '--channel', 'sms', '--format', 'json');
    is($d->{blocked}, 'channel consent', 'no SMS consent: blocked');

    ($rc, $out) = decide('--profile', $P{consent}, '--channel', 'email');
    like($out, qr/^Hi, your Trail Runner 42 is still waiting/,
         'email consent: the email text');

    # a cookie id without an alias is its own profile id
    my $uuid = join '-', unpack 'A8 A4 A4 A4 A12', uc $P{cookie};
    my $by_cookie = decision('cookie', '--alias', "cookie:$uuid");
    my $by_id = decision('cookie by id', '--profile', $P{cookie});
    is_deeply($by_cookie, $by_id,
              'a cookie without an alias resolves to that profile');
    like($by_id->{slots}{hero}{html}, qr/Welcome, Chloe!/,
         'cookie: the profile is read (first name)');

    # a device id nobody has: a new visitor bucketed by that id
    $d = decision('unknown device', '--alias', "device:$P{new}");
    is(hero($d), 'welcome-offer', 'an unknown device: a new visitor');

    my $err;
    ($rc, $out, $err) = decide('--alias', 'customer:nobody');
    ok($rc == 1 && $out eq ''
       && $err eq "omnictl: decide: customer:nobody not found\n",
       'a customer alias nobody has: exit 1, not found');
}


# --- decide: --explain with text, determinism, request facts --------------

{
    my ($rc, $out, $err) = decide('--alias', 'customer:cust-1001',
                                  '--channel', 'sms', '--explain');
    ok($rc == 0 && $out eq "Ana, your Trail Runner 42 is still waiting: "
                           . "https://shop.example.com/cart\n",
       'SMS --explain: standard output is only the text');
    like($err, qr/^holdout: not in "global-holdout-1".*^cart-abandon: shown in slot hero$/ms,
         'SMS --explain: the explanation on standard error');

    for my $args ([ '--alias', 'customer:cust-1001', '--explain' ],
                  [ '--profile', $P{viewer}, '--format', 'html' ],
                  [ '--profile', $P{loyal}, '--channel', 'email' ])
    {
        my @a = ctl('--store', $S, 'decide', '--rules', $RULES, '--now',
                    $NOW, @$args);
        my @b = ctl('--store', $S, 'decide', '--now', $NOW, @$args,
                    '--rules', $RULES);
        ok($a[0] == 0 && $a[1] ne '' && $a[1] eq $b[1] && $a[2] eq $b[2],
           "deterministic: @$args");
    }

    # every request fact is accepted; --now defaults to the clock
    ($rc, $out, $err) = ctl('--store', $S, 'decide', '--rules', $RULES,
                            '--profile', $P{new}, '--path', '/product/x',
                            '--query', '?utm_source=mail',
                            '--referrer', 'https://www.google.com/',
                            '--user-agent', 'Mozilla/5.0 (iPhone)',
                            '--channel', 'web');
    my $d = $rc == 0 ? decode_json_ok($out, 'request facts') : {};
    ok($rc == 0 && hero($d) eq 'welcome-offer',
       'request facts and the default --now') or diag $err;

    # read-only: a store directory nobody may write to still decides
    SKIP: {
        skip 'running as root: permissions do not apply', 1 if $> == 0;
        chmod 0555, $S;
        ($rc) = decide('--profile', $P{cart});
        chmod 0755, $S;
        is($rc, 0, 'decide needs no write access to the store');
    }
}


# --- decide: usage errors ---------------------------------------------------

{
    my @cases = (
        [ 'no profile', [ '--rules', $RULES ],
          qr/--profile ID or --alias TYPE:VALUE is required/ ],
        [ 'both', [ '--rules', $RULES, '--profile', $P{new}, '--alias',
                    'customer:cust-1001' ],
          qr/give --profile ID or --alias, not both/ ],
        [ 'no --rules', [ '--profile', $P{new} ],
          qr/--rules DIR is required/ ],
        [ 'bad id', [ '--rules', $RULES, '--profile', '42' ],
          qr/invalid profile id "42"/ ],
        [ 'bad alias', [ '--rules', $RULES, '--alias', 'phone:1' ],
          qr/unknown type "phone"/ ],
        [ 'bad channel', [ '--rules', $RULES, '--profile', $P{new},
                           '--channel', 'fax' ],
          qr/invalid --channel "fax"/ ],
        [ 'bad format', [ '--rules', $RULES, '--profile', $P{new},
                          '--format', 'xml' ],
          qr/invalid --format "xml"/ ],
        [ 'bad --now', [ '--rules', $RULES, '--profile', $P{new},
                         '--now', 'yesterday' ],
          qr/invalid --now "yesterday"/ ],
        [ '--now too large', [ '--rules', $RULES, '--profile', $P{new},
                               '--now', '4294967296' ],
          qr/invalid --now/ ],
        [ 'bad country', [ '--rules', $RULES, '--profile', $P{new},
                           '--geo-country', 'Portugal' ],
          qr/invalid --geo-country "Portugal"/ ],
        [ 'bad lat,lon', [ '--rules', $RULES, '--profile', $P{new},
                           '--geo-latlon', '91,0' ],
          qr/invalid --geo-latlon "91,0"/ ],
        [ 'positional argument', [ '--rules', $RULES, '--profile', $P{new},
                                   'extra' ],
          qr/unexpected argument "extra"/ ],
        [ 'option of another command', [ '--rules', $RULES, '--profile',
                                         $P{new}, '--json' ],
          qr/option --json is not valid for decide/ ],
        [ 'missing rules directory', [ '--rules', "$TMP/nope", '--profile',
                                       $P{new} ],
          qr/cannot open directory/ ],
    );

    for my $c (@cases) {
        my ($name, $args, $re) = @$c;
        my ($rc, $out, $err) = ctl('--store', $S, 'decide', @$args);
        ok($rc == 2 && $out eq '' && $err =~ $re, "decide, $name: exit 2")
            or diag "exit $rc: $err";
    }

    my ($rc, $out, $err) = ctl('decide', '--rules', $RULES, '--profile',
                               $P{new});
    ok($rc == 2 && $err =~ /--store DIR/, 'decide without --store: exit 2');

    ($rc, $out, $err) = ctl('--store', "$TMP/missing", 'decide', '--rules',
                            $RULES, '--profile', $P{new});
    ok($rc == 2 && $err =~ /missing/, 'decide on a missing store: exit 2');

    ($rc, $out) = ctl('decide', '--help');
    ok($rc == 0 && $out =~ /usage: omnictl .*decide \(--profile ID/
       && $out =~ /--geo-latlon/, 'decide --help');

    ($rc, $out) = ctl('--help');
    like($out, qr/rules check DIR.*decide/s, '--help lists rules and decide');
}

done_testing();
