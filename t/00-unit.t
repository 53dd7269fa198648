# Runs the C unit tests (build/unit/test_*, built by "make unit") and turns
# the TAP each one prints (t/unit/omni_tap.h) into a Test::More subtest.
#
# A binary passes when it exits 0, prints a plan ("1..N") that matches the
# number of results, reports at least one result and none of them is
# "not ok".  An empty build/unit is a failure: a test run that silently
# tests nothing must not look green.
#
# With TEST_NGINX_USE_VALGRIND=1 every binary runs under valgrind memcheck
# and any memory error or definite leak makes it fail.

use strict;
use warnings;

use File::Basename qw(basename);
use lib 't/lib';
use OmniTest;

my $dir  = repo_root() . '/build/unit';
my @bins = sort grep { -f && -x } glob "$dir/test_*";

ok(scalar @bins, "C unit test binaries in $dir")
    or diag('none found: run "make unit" (or "make test") first');

my @valgrind = $ENV{TEST_NGINX_USE_VALGRIND}
    ? ('valgrind', '--tool=memcheck', '--quiet', '--leak-check=full',
       '--errors-for-leak-kinds=definite', '--error-exitcode=99')
    : ();

for my $bin (@bins) {
    subtest basename($bin) => sub { run_unit($bin) };
}

done_testing();

sub run_unit {
    my ($bin) = @_;
    my ($exit, $out, $err) = run_command([ @valgrind, $bin ],
                                         cwd => repo_root(), timeout => 300);
    my ($plan, $results, $last_failed) = (undef, 0, 0);

    for my $line (split /\n/, $out) {
        if ($line =~ /^(not )?ok\b\s*(\d+)?\s*(?:-\s*)?(.*)$/) {
            my ($failed, $num, $desc) = ($1, $2, $3);
            $results++;
            # "ok N # SKIP ..." and "not ok N # TODO ..." are not failures
            my $directive = $desc =~ s/\s+#\s*(SKIP|TODO)\b.*$//i ? uc $1 : '';
            my $name = length $desc ? $desc : 'result ' . ($num // $results);
            $last_failed = !ok(!$failed || $directive eq 'TODO', $name);
        } elsif ($line =~ /^1\.\.(\d+)/) {
            $plan = $1;
        } elsif ($line =~ /^\s*#/) {
            # diagnostics of the binary (e.g. "#   got 1, want 2")
            $last_failed ? diag($line) : note($line);
        } elsif ($line =~ /^Bail out!/) {
            fail("$line");
        } elsif ($line =~ /\S/) {
            note("output: $line");
        }
    }

    ok($results > 0, 'reported at least one result');
    ok(defined $plan, 'printed a plan');
    is($results, $plan, 'plan matches the number of results') if defined $plan;
    is($exit, 0, 'exit status 0')
        or diag($exit == -1 ? 'timed out'
              : $exit > 128 ? 'killed by signal ' . ($exit - 128)
              : $exit == 99 && @valgrind ? 'valgrind found errors' : '');
    diag("stderr:\n$err") if length $err && $exit != 0;
    note("stderr:\n$err") if length $err && $exit == 0;
}
