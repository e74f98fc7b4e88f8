#!/bin/bash
# --report pointing at a file, at a read-only dir, at a symlink to elsewhere: when does verify
# say so (before the experiments, or after their minutes are spent)?
cd "$(dirname "$0")"; B=${B:-../../target/debug/blastwall}
OUT=$(mktemp -d /tmp/attack18r.XXXX)
python3 hostile.py ok > $OUT/ports 2> $OUT/admin.log & HP=$!
for i in $(seq 50); do [ -s $OUT/ports ] && break; sleep 0.1; done
read _ PT _ PA < $OUT/ports
sed -e "s/PORT_T/$PT/;s/PORT_A/$PA/;s/RATE/20/;s/\"DUR\"/\"3s\"/;s/START/1s/;s/FDUR/1s/;s/NAME/x/" base_running.toml > $OUT/spec.toml
echo file > $OUT/afile
mkdir $OUT/ro; chmod 500 $OUT/ro
mkdir $OUT/elsewhere; ln -s $OUT/elsewhere $OUT/link
for dir in $OUT/afile $OUT/ro/r $OUT/link; do
  S=$(date +%s.%N); timeout 60 $B verify $OUT/spec.toml --report $dir --quiet > /dev/null 2> $OUT/err; RC=$?
  echo "--report $dir: rc=$RC after $(echo "$(date +%s.%N) - $S" | bc | cut -c1-4)s: $(tail -1 $OUT/err)"
done
ls $OUT/elsewhere
kill $HP
