#!/usr/bin/perl
# Writes a deterministic HTML page of exactly SIZE bytes (default 10240) to
# stdout: a small shop-like page whose body ends with "</body></html>\n", so
# sub_filter '</body>' and the module's pixel injection have one match, with
# the module's slot markers (docs/directives.md, omni_inject) for the slots
# the seed and generated rules use: <!--omni:slot topbar-->, hero, aside
# and footer.
use strict;
use warnings;

my $size = shift // 10240;

my $head = <<'HTML';
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Bench shop</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/shop.css">
</head>
<body>
<!--omni:slot topbar-->
<header><h1>Bench shop</h1><nav><a href="/">Home</a> <a href="/cart">Cart</a></nav></header>
<!--omni:slot hero-->
<main>
HTML
my $tail = "<aside><!--omni:slot aside--></aside>\n</main>\n"
         . "<footer><!--omni:slot footer-->&copy; bench</footer>\n</body></html>\n";

my $out = $head;
my $i = 0;
while (1) {
    my $item = sprintf(
        "<article class=\"product\" id=\"p%04d\"><h2>Product %04d</h2>"
        . "<p>A plain, deterministic description of product number %d.</p>"
        . "<span class=\"price\">%d.%02d EUR</span></article>\n",
        $i, $i, $i, 10 + ($i * 7) % 90, ($i * 13) % 100);
    last if length($out) + length($item) + length($tail) > $size;
    $out .= $item;
    $i++;
}
my $pad = $size - length($out) - length($tail);
# Fill the rest with an HTML comment (at least 7 bytes: "<!---->" + newline)
# or, if there is less room than that, with spaces.
if ($pad >= 8) {
    $out .= "<!--" . ("x" x ($pad - 8)) . "-->\n";
} else {
    $out .= " " x $pad;
}
$out .= $tail;
die "page is " . length($out) . " bytes, wanted $size\n" if length($out) != $size;
print $out;
