#!/bin/bash
# usage: run_mode.sh MODE [RATE DUR START FDUR NAME] ; runs verify against hostile.py MODE, prints timing, rc, admin log
cd "$(dirname "$0")"
B=${B:-../../target/debug/blastwall}
MODE=$1; RATE=${2:-20}; DUR=${3:-6s}; START=${4:-1s}; FDUR=${5:-2s}; NAME=${6:-x}
OUT=$(mktemp -d /tmp/attack18.XXXX)
python3 hostile.py $MODE > $OUT/ports 2> $OUT/admin.log & HP=$!
for i in $(seq 50); do [ -s $OUT/ports ] && break; sleep 0.1; done
read _ PT _ PA < $OUT/ports
sed -e "s/PORT_T/$PT/;s/PORT_A/$PA/;s/RATE/$RATE/;s/\"DUR\"/\"$DUR\"/;s/START/$START/;s/FDUR/$FDUR/;s/NAME/$NAME/" base_running.toml > $OUT/spec.toml
S=$(date +%s.%N)
timeout ${LIMIT:-120} $B verify $OUT/spec.toml --report $OUT/report --quiet > $OUT/stdout 2> $OUT/stderr & VP=$!
if [ -n "$WATCH_RSS" ]; then sleep 1; BP=$(pgrep -P $VP | head -1); while kill -0 $BP 2>/dev/null; do grep VmRSS /proc/$BP/status 2>/dev/null; sleep 3; done; fi
wait $VP; RC=$?
E=$(date +%s.%N)
echo "mode=$MODE rc=$RC elapsed=$(echo "$E - $S" | bc)"
tail -5 $OUT/stderr; grep -c . $OUT/stdout >/dev/null
echo "--- admin requests:"; cut -c1-150 $OUT/admin.log | grep -v "GET /admin/events" | head; echo "events GETs: $(grep -c 'GET /admin/events' $OUT/admin.log)"
kill $HP; echo "out: $OUT"
