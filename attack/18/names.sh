#!/bin/bash
# A spec whose names and texts are hostile (/, .., newlines, quotes, markup, control chars,
# 33 header shares): `check`, then `verify` against hostile.py ok; the reports must parse
# and carry no live markup.
cd "$(dirname "$0")"; B=${B:-../../target/debug/blastwall}
OUT=$(mktemp -d /tmp/attack18n.XXXX)
python3 hostile.py ok > $OUT/ports 2> $OUT/admin.log & HP=$!
for i in $(seq 50); do [ -s $OUT/ports ] && break; sleep 0.1; done
read _ PT _ PA < $OUT/ports
{
cat <<SPEC
name = "../../etc/x\"]]></testsuites><script>alert(1)</script>"
[system]
traffic = "http://127.0.0.1:$PT"
admin = "http://127.0.0.1:$PA"
toxiproxy = "http://127.0.0.1:$PA"
[load]
rate = 20
duration = "4s"
[[load.request]]
path = "/"
SPEC
for i in $(seq 33); do printf '[[load.header]]\nname = "x-h%d"\nvalue = "v"\nshare = "50%%"\n' $i; done
cat <<'SPEC'
[[steady_state]]
metric = "availability"
at_least = "0%"
[[failure]]
name = "a/../b\n\"'</title><script>alert(1)</script>\u0001\u001b]]>"
failure = "<img src=x onerror=alert(1)>"
required_behaviour = "\u0000\u007f\ufffe"
acceptable_degradation = "]]>&amp;"
design = "<!--"
start = "1s"
duration = "1s"
cause = { fault = { route = "x", abort = 500 } }
[[failure.expect]]
metric = "availability"
during = "fault"
at_least = "0%"
SPEC
} > $OUT/spec.toml
$B check $OUT/spec.toml; echo "check rc=$?"
timeout 60 $B verify $OUT/spec.toml --report $OUT/report --quiet > $OUT/stdout 2> $OUT/stderr; echo "verify rc=$?"
tail -3 $OUT/stderr; cat $OUT/stdout | head -5
ls $OUT/report && python3 - $OUT/report <<'PY'
import json, sys, xml.dom.minidom
d = sys.argv[1]
json.load(open(d + "/report.json")); print("json parses")
xml.dom.minidom.parse(d + "/junit.xml"); print("junit parses")
html = open(d + "/report.html").read()
print("live <script:", html.lower().count("<script"), " onerror=:", html.count("<img"))
PY
kill $HP; echo "out: $OUT"
