#!/bin/bash
# A load of 100 years (the spec check accepts it), stopped by Ctrl-C after 4 s: verify must
# end at once with exit 2 and its reports. Prints rc, how long the stop took, peak RSS.
cd "$(dirname "$0")"; B=${B:-../../target/debug/blastwall}
OUT=$(mktemp -d /tmp/attack18l.XXXX)
python3 hostile.py ok > $OUT/ports 2> $OUT/admin.log & HP=$!
for i in $(seq 50); do [ -s $OUT/ports ] && break; sleep 0.1; done
read _ PT _ PA < $OUT/ports
sed -e "s/PORT_T/$PT/;s/PORT_A/$PA/;s/RATE/20/;s/\"DUR\"/\"${DUR:-100years}\"/;s/START/1s/;s/FDUR/${FDUR:-1s}/;s/NAME/x/" base_running.toml > $OUT/spec.toml
/usr/bin/time -f "peak RSS %M kB" timeout -s KILL 60 $B verify $OUT/spec.toml --report $OUT/report --quiet > $OUT/stdout 2> $OUT/stderr & TP=$!
sleep 4; VP=$(pgrep -P $TP | head -1); VP=$(pgrep -P $VP | head -1)
S=$(date +%s.%N); kill -INT $VP; wait $TP; RC=$?
echo "rc=$RC stop took $(echo "$(date +%s.%N) - $S" | bc | cut -c1-5)s"; tail -3 $OUT/stderr
kill $HP
