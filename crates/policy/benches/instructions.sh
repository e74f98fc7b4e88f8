#!/usr/bin/env bash
# Instructions per admit-and-record for ours and the crates compared, counted by callgrind.
# Usage: crates/policy/benches/instructions.sh   (needs valgrind: apt-get install -y valgrind)
set -euo pipefail
cd "$(dirname "$0")/../../.."
cargo bench -q -p blastwall-policy --all-features --bench instructions --no-run 2>/dev/null
binary=$(ls -t target/release/deps/instructions-* | grep -v '\.d$' | head -n 1)
count() { # case iterations -> instructions
  local out; out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$binary" "$1" "$2" >/dev/null 2>&1
  grep '^summary:' "$out" | awk '{print $2}'; rm -f "$out"
}
iterations=100000
printf '%-36s %14s\n' case instructions/op
for case in clock/Instant::now breaker/blastwall breaker/blastwall-shared breaker/recloser breaker/failsafe \
            ratelimit/blastwall ratelimit/governor \
            bulkhead/blastwall bulkhead/tokio-semaphore-owned bulkhead/tokio-semaphore \
            budget/blastwall budget/tower-tps-budget; do
  with=$(count "$case" "$iterations"); without=$(count "$case" 0)
  printf '%-36s %14.1f\n' "$case" "$(echo "($with - $without) / $iterations" | bc -l)"
done
