#!/bin/bash
# Hostile specs through `blastwall check`: a rate of 1e9 (a float), durations that overflow,
# a load of 100 years, a fault ending after the load. Prints each rc (101 = a panic).
cd "$(dirname "$0")"; B=${B:-../../target/debug/blastwall}; T=$(mktemp -d)
mk(){ sed -e "s/PORT_T/1/;s/PORT_A/2/;s/RATE/$1/;s/\"DUR\"/\"$2\"/;s/START/$3/;s/FDUR/$4/;s/NAME/x/" base_running.toml > $T/$5; }
mk 1e9 10s 1s 1s rate.toml
mk 10 18446744073709551615s 18446744073709551615s 1s overflow.toml
mk 10 100years 1s 1s century.toml
mk 10 10s 10s 1s late.toml
for f in rate overflow century late; do timeout 10 $B check $T/$f.toml > $T/out 2>&1; echo "$f: rc=$? $(grep -m1 -E 'error|panicked|ok' $T/out | cut -c1-160)"; done
rm -rf $T
