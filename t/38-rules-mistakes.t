# Rules that catch marketers' mistakes at load (docs/rules.md, "Errors"):
# a template variable one or two typos away from a known one
# ({{frist_name}}) is an error naming file:line:column with a "did you
# mean"; overlapping ranges of one experiment are an error; valid uses
# (bare attribute names far from any known name, attr.NAME, identical
# arms) keep working.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;

run_blocks();

__DATA__

=== TEST 1: {{frist_name}}: nginx -t names the file, line and column, and suggests first_name
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_rules $TEST_NGINX_PREFIX/rules;
--- user_files
>>> rules/welcome.json
{
  "id": "welcome",
  "banner": {"slot": "hero",
    "html": "<p>Welcome, {{frist_name|there}}!</p>"}
}
--- config
location = /t { return 200; }
--- must_die
omni_rules: $TEST_NGINX_PREFIX/rules/welcome.json:4:26: banner.html: unknown template variable "frist_name" (did you mean "first_name"? an attribute of that very name is "attr.frist_name")

=== TEST 2: a typo in a dotted variable: the closest one
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_rules $TEST_NGINX_PREFIX/rules;
--- user_files
>>> rules/cart.json
{"id": "cart", "banner": {"slot": "hero", "text": "x",
 "html": "<p>{{cart.top_item.nme}}</p>"}}
--- config
location = /t { return 200; }
--- must_die
rules/cart.json:2:14: banner.html: unknown template variable "cart.top_item.nme" (did you mean "cart.top_item.name"?)

=== TEST 3: partially overlapping arms of one experiment are refused, across files
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_rules $TEST_NGINX_PREFIX/rules;
--- user_files
>>> rules/a.json
{"id": "arm-a", "when": {"experiment": {"id": "hero-test", "from": 0, "to": 60}},
 "banner": {"slot": "hero", "html": "A"}}
>>> rules/b.json
{"id": "arm-b", "when": {"experiment": {"id": "hero-test", "from": 50, "to": 100}},
 "banner": {"slot": "hero", "html": "B"}}
--- config
location = /t { return 200; }
--- must_die
qr/rules\/b\.json:1:40: when\.experiment: experiment "hero-test" range \[50\.00%, 100\.00%\) overlaps \[0\.00%, 60\.00%\) in \S+\/rules\/a\.json: the ranges of one experiment must be equal or disjoint/

=== TEST 4: valid uses keep working: attr.NAME, far bare attributes, the same arm twice, disjoint arms
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- user_files
>>> rules/ok.json
[
 {"id": "a", "when": {"experiment": {"id": "e", "from": 0, "to": 50}},
  "banner": {"slot": "hero", "html": "<p>{{first_name|Hi}} {{attr.frist_name}} {{loyalty_points}} {{tier}} {{name}}</p>"}},
 {"id": "a-px", "when": {"experiment": {"id": "e", "from": 0, "to": 50}},
  "pixels": [{"img": "https://ads.example.com/a"}]},
 {"id": "b", "when": {"experiment": {"id": "e", "from": 50, "to": 100}},
  "banner": {"slot": "hero", "html": "B"}}
]
--- config
location = /t { return 200; }
--- request
GET /t
--- no_error_log
[emerg]
