#!/bin/bash
# usage: bench/callgrind.sh BLASTWALL_BINARY [bare|full|full_capacity|production|armed|MECHANISM] [RUNS]
#
# Instructions per proxied request, counted by callgrind: repeatable for one binary whatever
# else the machine is doing, so it is the figure to compare two builds by (the CPU-time
# figures of proxies.py and side_by_side.py move by more than a few percent between rounds).
#
# The proxy runs one worker thread (`worker_threads = 1`) under `valgrind --tool=callgrind`
# in front of an nginx that answers `200 ok` to everything (health checks included). After
# a 3 s warm-up the counters are zeroed, `wrk -t1 -c4` runs for 6 s, and the counters are
# dumped; then they are zeroed again and dumped after 6 s with no traffic, and that idle
# count (timers, health checks, the reaper) is subtracted. Instructions per request =
# (loaded - idle) / requests wrk completed. The figure is printed per run, then the mean.
#
# Configs:
#   bare        one route, one endpoint, nothing else (the `cgf.py` config of the passes in
#               bench/README.md);
#   full        issue 19's "every mechanism on", exactly its list (bench/full.toml): retries
#               and budget, per-try timeout, breakers, outlier detection, health checks,
#               adaptive concurrency, stale-if-error; production less its route timeout and
#               peak-EWMA balancer;
#   full_capacity  full with issue 19's round-two concurrency instead: one limit, the cluster's
#               capacity learnt from its endpoints' refusals (adaptive = "capacity"), no
#               Gradient2 on the route;
#   production  what a production team would write: route timeout and per-try timeout,
#               three attempts with jittered backoff and a retry budget, an adaptive
#               concurrency limit on the route and the cluster, stale-if-error, active HTTP
#               health checks, cluster and endpoint breakers, outlier detection.
#   armed       production plus two fault rules that wrk's requests never meet (a
#               request-level abort and an attempt-level delay, both for a header wrk does
#               not send, from a trusted client): what a rule in wait costs each request.
#   MECHANISM   the bare config plus ONE mechanism, configured as in production (the cost of
#               each alone; "Cost of each mechanism" in bench/README.md):
#                 route_timeout    the route's timeout = "2s"
#                 per_try_timeout  per_try_timeout = "500ms" (no route timeout)
#                 retry            three attempts with jittered backoff, the cluster's retry budget
#                 breaker          the cluster's and the endpoints' circuit breakers
#                 outlier          outlier detection
#                 health_check     active HTTP health checks every second
#                 adaptive         Gradient2 on the route and AIMD on the cluster
#                 stale_if_error   the route's stale-if-error fallback
#                 hedge            a hedge after 50 ms (never sent: the upstream answers first)
#                 peak_ewma        balance = "peak_ewma" instead of round robin
#                 access_log       an access log line per request, to a file
#                 no_decision_headers   decision_headers = "never" (bare has "always", the
#                                  default): what the x-blastwall-* answer headers cost, negated
# Needs valgrind, nginx and wrk (Debian: valgrind nginx-light wrk). Everything runs on
# 127.0.0.1; everything it starts it stops.
set -euo pipefail
binary=${1:?usage: bench/callgrind.sh BLASTWALL_BINARY [bare|full|full_capacity|production|armed|MECHANISM] [RUNS]}
kind=${2:-bare}
runs=${3:-2}
binary=$(realpath "$binary")
here=$(cd "$(dirname "$0")" && pwd)
for tool in valgrind callgrind_control nginx wrk; do
  command -v "$tool" >/dev/null || { echo "callgrind.sh: $tool is missing" >&2; exit 2; }
done

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up=$(free_port)
cat >"$work/up.conf" <<EOC
worker_processes 1; daemon off; pid $work/up.pid; error_log $work/up.err warn;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $work/b; proxy_temp_path $work/p;
fastcgi_temp_path $work/f; uwsgi_temp_path $work/u; scgi_temp_path $work/s;
keepalive_requests 1000000; server { listen 127.0.0.1:$up; default_type text/plain;
location / { return 200 "ok\n"; } } }
EOC
taskset -c 1 nginx -c "$work/up.conf" &
pids+=($!)

config() {
  local port=$1
  printf '[proxy]\nworker_threads = 1\n'
  # The armed rules' header is honoured only from trusted clients (and refused without any).
  [ "$kind" = armed ] && printf 'trusted_clients = ["127.0.0.1"]\n'
  [ "$kind" = no_decision_headers ] && printf 'decision_headers = "never"\n'
  printf '\n[admin]\nlisten = "off"\n\n'
  [ "$kind" = access_log ] && printf '[access_log]\npath = "%s"\n\n' "$work/access.log"
  printf '[[listener]]\nname = "bench"\nlisten = "127.0.0.1:%s"\n\n' "$port"
  case "$kind" in
    bare|access_log|no_decision_headers)
      printf '[[route]]\nname = "all"\ncluster = "u"\n\n[cluster.u]\n'
      printf 'endpoints = [{ address = "127.0.0.1:%s" }]\n' "$up"
      ;;
    full) sed "s/@UPSTREAM@/$up/" "$here/full.toml" ;;
    full_capacity)
      sed -e "s/@UPSTREAM@/$up/" -e '/^\[route.concurrency\]/,/^$/d' \
        -e 's/^adaptive = "aimd"/adaptive = "capacity"/' "$here/full.toml"
      ;;
    route_timeout|per_try_timeout|retry|breaker|outlier|health_check|adaptive|stale_if_error|hedge|peak_ewma)
      mechanism
      ;;
    production|armed)
      cat <<EOC
[[route]]
name = "all"
cluster = "u"
timeout = "2s"
per_try_timeout = "500ms"
EOC
      if [ "$kind" = armed ]; then
        cat <<EOC

[[route.fault]]
abort = { status = 503 }
header = "x-chaos=abort"

[[route.fault]]
at = "attempt"
delay = "1s"
header = "x-chaos=slow"
EOC
      fi
      cat <<EOC

[route.retry]
attempts = 3
backoff = { base = "25ms", max = "250ms", jitter = "full" }

[route.concurrency]
adaptive = "gradient2"
max = 1000
queue = 50

[route.fallback]
stale_if_error = { max_age = "5m" }

[cluster.u]
balance = "peak_ewma"
retry_budget = { ratio = 0.2, min_per_second = 10 }
endpoints = [{ address = "127.0.0.1:$up" }]

[cluster.u.concurrency]
adaptive = "aimd"
max = 1000
queue = 100

[cluster.u.health_check]
kind = "http"
path = "/healthz"
interval = "1s"
timeout = "500ms"

[cluster.u.circuit_breaker]
failure_rate_percent = 50

[cluster.u.endpoint_circuit_breaker]
consecutive_failures = 5

[cluster.u.outlier_detection]
consecutive_gateway_errors = 3
failure_percentage = { threshold = 85, request_volume = 50 }
EOC
      ;;
    *) echo "callgrind.sh: config is bare, full, full_capacity, production, armed or a mechanism (see the head of this script), not $kind" >&2; exit 2 ;;
  esac
}

mechanism() { # the bare config plus the one mechanism $kind names, set as production sets it
  printf '[[route]]\nname = "all"\ncluster = "u"\n'
  case "$kind" in
    route_timeout) printf 'timeout = "2s"\n' ;;
    per_try_timeout) printf 'per_try_timeout = "500ms"\n' ;;
    retry) printf '\n[route.retry]\nattempts = 3\nbackoff = { base = "25ms", max = "250ms", jitter = "full" }\n' ;;
    adaptive) printf '\n[route.concurrency]\nadaptive = "gradient2"\nmax = 1000\nqueue = 50\n' ;;
    stale_if_error) printf '\n[route.fallback]\nstale_if_error = { max_age = "5m" }\n' ;;
    hedge) printf '\n[route.hedge]\nafter = "50ms"\n' ;;
  esac
  printf '\n[cluster.u]\n'
  case "$kind" in
    retry) printf 'retry_budget = { ratio = 0.2, min_per_second = 10 }\n' ;;
    peak_ewma) printf 'balance = "peak_ewma"\n' ;;
  esac
  printf 'endpoints = [{ address = "127.0.0.1:%s" }]\n' "$up"
  case "$kind" in
    adaptive) printf '\n[cluster.u.concurrency]\nadaptive = "aimd"\nmax = 1000\nqueue = 100\n' ;;
    health_check)
      printf '\n[cluster.u.health_check]\nkind = "http"\npath = "/healthz"\ninterval = "1s"\ntimeout = "500ms"\n'
      ;;
    breaker)
      printf '\n[cluster.u.circuit_breaker]\nfailure_rate_percent = 50\n'
      printf '\n[cluster.u.endpoint_circuit_breaker]\nconsecutive_failures = 5\n'
      ;;
    outlier)
      printf '\n[cluster.u.outlier_detection]\nconsecutive_gateway_errors = 3\n'
      printf 'failure_percentage = { threshold = 85, request_volume = 50 }\n'
      ;;
  esac
}

total_ir() { # the instruction total of one callgrind dump file
  awk '/^(summary|totals):/ { print $2; exit }' "$1"
}

results=()
for run in $(seq 1 "$runs"); do
  port=$(free_port)
  config "$port" >"$work/bw.toml"
  "$binary" check "$work/bw.toml" >/dev/null
  rm -f "$work"/callgrind.out.*
  taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out.%p" \
    "$binary" run -c "$work/bw.toml" --log warn >"$work/bw.log" 2>&1 &
  proxy=$!
  pids+=("$proxy")
  for _ in $(seq 1 200); do
    curl -fs "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
    sleep 0.1
  done
  taskset -c 1 wrk -t1 -c4 -d3s "http://127.0.0.1:$port/" >/dev/null
  callgrind_control -z "$proxy" >/dev/null 2>&1
  requests=$(taskset -c 1 wrk -t1 -c4 -d6s "http://127.0.0.1:$port/" | awk '/requests in/ { print $1 }')
  # The first dump is written as callgrind.out.PID.1, the second as .2.
  callgrind_control -d "$proxy" >/dev/null 2>&1
  callgrind_control -z "$proxy" >/dev/null 2>&1
  sleep 6
  callgrind_control -d "$proxy" >/dev/null 2>&1
  kill "$proxy"
  wait "$proxy" 2>/dev/null || true
  # CALLGRIND_KEEP=DIR keeps the loaded dump, for callgrind_annotate.
  [ -n "${CALLGRIND_KEEP:-}" ] && cp "$work/callgrind.out.$proxy.1" "$CALLGRIND_KEEP/callgrind.$kind.$run.out"
  loaded=$(total_ir "$work/callgrind.out.$proxy.1")
  idle=$(total_ir "$work/callgrind.out.$proxy.2")
  per=$(((loaded - idle) / requests))
  echo "run $run ($kind): $requests requests, $loaded - $idle instructions: $per per request"
  results+=("$per")
done
printf '%s\n' "${results[@]}" | awk -v kind="$kind" '{ s += $1; n++ } END { printf "%s: %d instructions per request (mean of %d)\n", kind, s / n, n }'
