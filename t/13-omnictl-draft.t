# omnictl decide --draft FILE (docs/rules.md, "Preview before it goes
# live"): a rule file not yet in the rules directory is previewed with
# the directory's other files, for a given profile, without touching the
# directory; errors name the draft's own path, line and column.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use File::Temp qw(tempdir);
use JSON::PP ();

my $dir   = tempdir('omni-draft-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $store = "$dir/store";
my $rules = "$dir/rules";
mkdir $rules or die;

sub spew { open my $f, '>', $_[0] or die "$_[0]: $!"; print $f $_[1]; close $f }

spew("$rules/welcome.json", '{"id": "welcome", "priority": 10, "when": {"stage": "new"},
  "banner": {"slot": "hero", "html": "<p>Welcome</p>"}}');
spew("$rules/bar.json", '{"id": "bar", "banner": {"slot": "topbar", "html": "bar"}}');
spew("$dir/winter.json", '{"id": "winter", "priority": 50, "when": {"stage": "new"},
  "banner": {"slot": "hero", "html": "<p>Winter sale, {{first_name|friend}}!</p>"}}');
spew("$dir/typo.json", '{"id": "typo",
  "banner": {"slot": "hero", "html": "<p>{{frist_name}}</p>"}}');
spew("$dir/bar.json", '{"id": "bar", "banner": {"slot": "topbar", "html": "new bar"}}');

my ($rc, $out, $err) = omnictl('--store', $store, 'stat', '--create');
is($rc, 0, 'a store') or diag $err;

my @decide = ('--store', $store, 'decide', '--profile',
              '0123456789abcdef0123456789abcdef', '--rules', $rules);

($rc, $out, $err) = omnictl(@decide);
my $d = JSON::PP::decode_json($out);
is($d->{slots}{hero}{rule}, 'welcome', 'live: the welcome');

($rc, $out, $err) = omnictl(@decide, '--draft', "$dir/winter.json", '--explain');
is($rc, 0, 'with the draft: exit 0') or diag $err;
$d = JSON::PP::decode_json($out);
is($d->{slots}{hero}{rule}, 'winter', 'the draft wins the hero');
is($d->{slots}{hero}{text}, 'Winter sale, friend!', 'rendered for the profile');
is($d->{slots}{topbar}{rule}, 'bar', 'the live rules still apply');
ok((grep { /^welcome: lost: slot hero went to winter/ } @{ $d->{explanation} }),
   'and explain why the live one lost') or diag explain $d->{explanation};

($rc, $out, $err) = omnictl(@decide, '--draft', "$dir/bar.json");
$d = JSON::PP::decode_json($out);
like($d->{slots}{topbar}{html}, qr/new bar/, 'a draft replaces the file of its name');

($rc, $out, $err) = omnictl(@decide, '--draft', "$dir/typo.json");
is($rc, 2, 'a broken draft: exit 2');
like($err, qr{^\Q$dir\E/typo\.json:2:42: banner\.html: unknown template variable "frist_name" \(did you mean "first_name"\?}m,
     'the error names the draft, line and column');
like($err, qr{cannot load the rules in "\Q$rules\E" with the draft \Q$dir\E/typo\.json}, 'and says so');

($rc, $out, $err) = omnictl(@decide, '--draft', "$dir/nope.txt");
is($rc, 2, 'a draft that nginx would ignore: usage error (2)') or diag "$rc $err";
like($err, qr/--draft ".*nope\.txt": a rule file's name ends in \.json/, 'why');

opendir my $dh, $rules or die;
is_deeply([ sort grep { !/^\./ } readdir $dh ], [ 'bar.json', 'welcome.json' ],
          'the rules directory is untouched');
my @left = glob(($ENV{TMPDIR} || '/tmp') . '/omnictl-draft-*');
is(scalar @left, 0, 'no temporary directory left') or diag "@left";

done_testing();
