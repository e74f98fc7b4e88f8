#!/bin/bash
# usage: signals.sh SIGNAL DELAY [SIGNAL2 DELAY2]
# Runs `blastwall verify examples/specs/shop.toml`, sends SIGNAL to verify's pid alone (not its
# group, as `kill`, systemd or a CI runner's timeout would) after DELAY seconds, and lists
# the children verify had that are still alive afterwards (orphans).
cd "$(dirname "$0")/../.."
B=${B:-target/debug/blastwall}
OUT=$(mktemp -d /tmp/attack18sig.XXXX)
setsid $B verify examples/specs/shop.toml --report $OUT/report --quiet > $OUT/stdout 2> $OUT/stderr & VP=$!
sleep $2
KIDS=$(pgrep -P $VP | tr '\n' ' ')
echo "verify $VP children before: $KIDS"
kill -$1 $VP
if [ -n "$3" ]; then sleep $4; kill -$3 $VP; fi
for i in $(seq 100); do kill -0 $VP 2>/dev/null || break; sleep 0.1; done
kill -0 $VP 2>/dev/null && echo "verify still running after 10 s"
wait $VP; echo "verify rc=$?"
sleep 0.5
LEFT=""; for k in $KIDS; do kill -0 $k 2>/dev/null && LEFT="$LEFT $k($(ps -o stat=,args= -p $k | cut -c1-60))"; done
echo "children left alive:${LEFT:- none}"
tail -3 $OUT/stderr
# clean up what this script's run left (only those pids)
for k in $KIDS; do kill -CONT $k 2>/dev/null; kill -KILL $k 2>/dev/null; done
