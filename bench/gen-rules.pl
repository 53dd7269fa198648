#!/usr/bin/perl
# Writes COUNT generated rules into DIR (bench/run.sh copies the seed rules
# of rules/ next to them, for arm B's "100 rules"): a marketing team's
# rule set of the kind docs/rules.md describes, one file per kind of
# campaign (gen-KIND.json), deterministic for a given day.
#
#   gen-rules.pl DIR COUNT
#
# The rules test what real ones test: segments, attributes, cart, views,
# purchases, events, lifecycle, geo (countries, regions, cities, stores
# nearby), time windows, dates, path, query, referrer, device and
# experiments; most carry a banner for one of the slots of the bench page
# (hero, aside, topbar, footer), some are pixel-only or header-only.
#
# Against the bench's visitors (bench/gen-profiles.pl, bench/gen-geo.pl,
# a desktop browser on /b/page.html without query or referrer) most of
# them do not match.  The ones that do, for some visitors: a pixel for the
# "newsletter" segment, aside banners for visitors from some countries
# and near some stores (lower in rank than the seed showroom, or capped).
# Hero rules are spread over priorities 5..95, so about half of them rank
# above the seed escalation rule (40) that the visitors mostly get, and are
# looked at on every request.
use strict;
use warnings;

use JSON::PP;

my ($dir, $count) = @ARGV;
die "usage: gen-rules.pl DIR COUNT\n" unless defined $count && $count =~ /^\d+$/;
-d $dir or die "gen-rules: $dir: not a directory\n";

my $now = time();
my $day = 86400;
sub date { my @t = gmtime(shift); return sprintf('%04d-%02d-%02d', $t[5] + 1900, $t[4] + 1, $t[3]); }

my @absent_segments = qw(skiers b2b students climbers families cyclists
                         lapsed-90d vip-club beta-testers lunch-club);
my @slots = qw(hero aside footer topbar);

sub banner {
    my ($slot, $class, $html, $text) = @_;
    return {
        slot => $slot,
        html => "<div class=\"omni omni-$class\">$html</div>",
        text => $text,
    };
}

sub cta {
    my ($href, $label) = @_;
    return "<a class=\"omni-cta\" href=\"$href\">$label</a>";
}

sub hero_priority { my $k = shift; return 5 + ($k * 37) % 91; }

# Each kind: a sub taking the rule's index within the kind, returning the
# rule without its id.
my %kinds = (
    segment => sub {
        my $k = shift;
        my $seg = $absent_segments[$k % @absent_segments];
        my $slot = $slots[$k % 3];
        return {
            priority => $slot eq 'hero' ? hero_priority($k) : 10 + $k % 20,
            when => { segment => $seg, channel => ['web', 'app'] },
            banner => banner($slot, 'seg',
                "<p>{{first_name|Hi}}, new in for $seg: our picks of the week.</p>"
                . cta("/c/$seg", 'Shop now'), "New in for $seg."),
        };
    },
    attribute => sub {
        my $k = shift;
        my @w = (
            { attr => { key => 'tier', in => ['gold', 'platinum'] } },
            { attr => { key => 'age', gte => 70 } },
            { attr => { key => 'zip', prefix => ['75', '69', '13'] } },
            { attr => { key => 'lang', eq => 'de' } },
            { attr => { key => 'employee', exists => JSON::PP::true } },
        );
        return {
            priority => hero_priority($k + 3),
            when => { %{ $w[$k % @w] }, channel => 'web' },
            banner => banner('hero', 'attr',
                "<p>{{first_name|Hello}}, a selection picked for you.</p>"
                . cta('/picks', 'See it'), 'A selection picked for you.'),
        };
    },
    cart => sub {
        my $k = shift;
        my @w = (
            { cart => { non_empty => JSON::PP::true, value_gte => 300 + 100 * $k } },
            { cart => { contains_category => ['tents', 'stoves', 'sleeping-bags'] } },
            { cart => { items_gte => 4 + $k } },
            { cart => { contains_sku => ['TENT-2P', 'STOVE-1'], idle_lt => '30m' } },
        );
        return {
            priority => hero_priority($k + 7),
            when => $w[$k % @w],
            banner => banner($k % 2 ? 'aside' : 'hero', 'cart',
                '<p>Your cart of {{cart.items}} item(s), {{cart.value}}: '
                . 'add a gift for free.</p>' . cta('/cart', 'Go to cart'),
                'Add a free gift to your cart.'),
            cooldown => '1h',
        };
    },
    history => sub {
        my $k = shift;
        my @w = (
            { purchased => { sku => 'JKT-7', within => '30d' } },
            { purchased => { category => 'tents', older_than => '52w' } },
            { orders => { gte => 3 } },
            { revenue => { gt => 1000 } },
            { viewed => { category => ['tents', 'bikes', 'skis'], within => '7d' } },
            { viewed => { sku => 'TRAIL-42', within => '2d' } },
            { event => { name => 'Wishlist Added', gte => 2 } },
            { event => { name => 'Newsletter Opened', gte => 20, within => '30d' } },
        );
        return {
            priority => hero_priority($k + 11),
            when => { %{ $w[$k % @w] }, channel => ['web', 'app', 'email'] },
            banner => banner('hero', 'hist',
                '<p>Because you liked the {{viewed.name|outdoors}}: '
                . '10% off the matching gear.</p>' . cta('/match', 'See the gear'),
                '10% off the matching gear.'),
        };
    },
    lifecycle => sub {
        my $k = shift;
        my @w = (
            { days_since_last_seen => { gte => 30 } },
            { visits => { lt => 2 } },
            { days_since_first_seen => { lt => 7 } },
            { last_seen => { channel => 'app', within => '1d' } },
            { stage => 'loyal', days_since_purchase => { gte => 90 } },
        );
        return {
            priority => hero_priority($k + 13),
            when => $w[$k % @w],
            banner => banner('hero', 'life',
                '<p>Welcome back, {{first_name|friend}}!</p>'
                . cta('/new', "What's new"), 'Welcome back!'),
        };
    },
    geo_country => sub {
        my $k = shift;
        my @cc = (['DE', 'AT', 'CH'], ['US'], ['GB', 'IE'], ['ES'], ['IT'],
                  ['JP'], ['NL', 'BE'], ['CA'], ['AU', 'NZ']);
        return {
            priority => 5 + $k % 10,
            when => { geo => { country => $cc[$k % @cc] }, channel => 'web' },
            banner => banner('aside', 'geo',
                '<p>Free returns in {{geo.country}}, delivery in 2 days to '
                . '{{geo.city|your city}}.</p>', 'Free returns, delivery in 2 days.'),
        };
    },
    geo_city => sub {
        my $k = shift;
        my @w = (
            { geo => { region => 'IDF', city => 'Versailles' } },
            { geo => { country => 'PT', region => '13' }, segment => 'cyclists' },
            { geo => { city => ['Nice', 'Marseille'] } },
            { geo => { country => 'FR' }, path => { prefix => '/fr/' } },
        );
        return {
            priority => 30 + $k % 10,
            when => $w[$k % @w],
            banner => banner('aside', 'city',
                '<p>Events near {{geo.city|you}} this month.</p>', 'Events near you.'),
        };
    },
    geo_near => sub {
        my $k = shift;
        my @stores = (
            ['mad-sol', 'Madrid Sol', 40.4169, -3.7035],
            ['ber-mitte', 'Berlin Mitte', 52.5208, 13.4094],
            ['lon-soho', 'London Soho', 51.5136, -0.1365],
            ['mil-duomo', 'Milan Duomo', 45.4641, 9.1919],
            ['nyc-soho', 'New York SoHo', 40.7233, -74.0030],
            ['tok-ginza', 'Tokyo Ginza', 35.6717, 139.7650],
        );
        my $s = $stores[$k % @stores];
        return {
            priority => 25,
            when => { channel => ['web', 'app'], geo => { near => { km => 15,
                stores => [ { id => $s->[0], name => $s->[1], lat => $s->[2],
                              lon => $s->[3],
                              url => "https://shop.example.com/stores/$s->[0]" } ] } } },
            cap => { max => 3, per => '7d' },
            banner => banner('aside', 'store',
                '<p>Our <strong>{{geo.store.name}}</strong> store is '
                . '{{geo.store.distance_km}} km away.</p>'
                . '<a href="{{geo.store.url}}">Directions</a>',
                'Our {{geo.store.name}} store is {{geo.store.distance_km}} km away.'),
        };
    },
    time => sub {
        my $k = shift;
        my @w = (
            { time => { tz => 'Europe/Lisbon', weekdays => [qw(mon tue wed thu fri)],
                        hours => { from => '12:00', to => '14:00' } },
              segment => 'lunch-club' },
            { time => { after => date($now - 60 * $day), before => date($now - 55 * $day) } },
            { time => { tz => 'America/New_York', hours => { from => '22:00', to => '06:00' } },
              segment => 'families' },
            { time => { tz => 'Europe/Paris', weekdays => ['sat', 'sun'] },
              cart => { contains_category => 'bikes' } },
        );
        return {
            priority => hero_priority($k + 17),
            when => $w[$k % @w],
            banner => banner($k % 2 ? 'topbar' : 'hero', 'time',
                '<p>Happy hour: 15% off until it ends.</p>', 'Happy hour: 15% off.'),
        };
    },
    dated => sub {
        my $k = shift;
        # Campaigns that ended or have not started: the index skips them.
        my $past = $k % 2 == 0;
        return {
            priority => hero_priority($k + 19),
            start => date($now + ($past ? -90 : 20 + $k) * $day),
            end => date($now + ($past ? -60 + $k : 50 + $k) * $day),
            tz => 'Europe/Lisbon',
            when => { channel => 'web' },
            banner => banner($k % 3 ? 'hero' : 'topbar', 'season',
                '<p>Season sale: up to 40% off.</p>' . cta('/sale', 'Shop the sale'),
                'Season sale: up to 40% off.'),
        };
    },
    request => sub {
        my $k = shift;
        my @w = (
            { path => { prefix => ['/checkout', '/account'] } },
            { path => { regex => '^/p/[0-9]+$' } },
            { path => { eq => ['/', '/home'] } },
            { utm_source => ['newsletter', 'facebook', 'tiktok'] },
            { query => { arg => 'utm_campaign', eq => 'spring' } },
            { referrer => { host => 'google.com' } },
            { referrer => { host => 'instagram.com' } },
            { device => 'mobile' },
            { device => ['tablet'] },
        );
        return {
            priority => hero_priority($k + 23),
            when => $w[$k % @w],
            banner => banner($slots[$k % 4], 'req',
                '<p>Get the app: 10% off your first app order.</p>'
                . cta('/app', 'Download'), 'Get the app: 10% off.'),
        };
    },
    experiment => sub {
        my $k = shift;
        return {
            priority => hero_priority($k + 29),
            when => {
                experiment => { id => "hero-test-$k", from => 0, to => 50 },
                any => [ { segment => 'beta-testers' },
                         { viewed => { category => 'skis', within => '30d' } } ],
                not => { purchased => { category => 'skis', within => '180d' } },
            },
            banner => banner('hero', 'exp', '<p>Variant A: free waxing.</p>',
                             'Free waxing.'),
        };
    },
    pixel => sub {
        my $k = shift;
        my @segs = ('newsletter', 'skiers', 'b2b', 'climbers', 'students');
        my $seg = $segs[$k % @segs];
        return {
            when => { segment => $seg },
            pixels => [ { ($k % 2 ? 'script' : 'img') =>
                "https://px.example.net/s?seg=$seg&k=$k&p={{profile.id}}" } ],
        };
    },
    header => sub {
        my $k = shift;
        my $seg = $absent_segments[($k + 3) % @absent_segments];
        return {
            when => { segment => $seg },
            headers => { 'X-Omni-Segment' => $seg },
        };
    },
);

# How many of each kind, per 89 rules (scaled to COUNT).
my @mix = (
    [segment => 12], [attribute => 6], [cart => 6], [history => 10],
    [lifecycle => 5], [geo_country => 6], [geo_city => 4], [geo_near => 4],
    [time => 6], [dated => 6], [request => 9], [experiment => 4],
    [pixel => 5], [header => 6],
);
my $total = 0;
$total += $_->[1] for @mix;

my $made = 0;
my %files;
for my $i (0 .. $#mix) {
    my ($kind, $w) = @{ $mix[$i] };
    my $n = $i == $#mix ? $count - $made : int($w * $count / $total + 0.5);
    $n = $count - $made if $made + $n > $count;
    for my $k (0 .. $n - 1) {
        my $r = $kinds{$kind}->($k);
        my $id = sprintf('bench-%s-%02d', $kind, $k);
        $id =~ tr/_/-/;
        push @{ $files{$kind} }, { id => $id, campaign => $id, %$r };
    }
    $made += $n;
}

my $json = JSON::PP->new->canonical->pretty;
for my $kind (sort keys %files) {
    (my $name = "gen-$kind.json") =~ tr/_/-/;
    open(my $fh, '>', "$dir/$name") or die "gen-rules: $dir/$name: $!\n";
    print $fh $json->encode({ rules => $files{$kind} });
    close($fh) or die "gen-rules: $dir/$name: $!\n";
}
