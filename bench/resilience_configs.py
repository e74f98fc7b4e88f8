"""The proxies' configs for bench/resilience.py, in one place: Blastwall's (ONE for every
scenario: `blastwall_issue19`), and nginx's and HAProxy's in two variants each.

Issue 19 lets the anchors keep their best config per scenario, so each has a `failure`
variant (passive health that marks a replica down on errors, retries on 5xx, no capacity
written) and a `capacity` variant (tuned to the replicas' known capacity: nginx
`max_conns`, HAProxy `maxconn` with a queue, neither marking a replica down or retrying on
a 503). Every run of a scenario runs both, and the figures name the one that did better.
Blastwall gets no such choice: `blastwall_issue19` is what the lead tunes, and the only
config the issue's table reports for it.

Every config gets the same budget of time from the numbers below.
"""

from __future__ import annotations

from pathlib import Path

REPLICAS = 3
# The same numbers go into every proxy's config, so each gets the same budget of time.
CONNECT_TIMEOUT_MS = 250
PER_TRY_TIMEOUT_MS = 500      # one attempt (nginx proxy_read_timeout, HAProxy timeout server)
OVERALL_TIMEOUT_MS = 2000     # all attempts (nginx proxy_next_upstream_timeout)
ATTEMPTS = 3                  # counting the first (HAProxy: retries 2)
HEALTH_INTERVAL_MS = 1000
OVERLOAD_CAPACITY = 2         # requests in flight per replica when overloaded (known capacity)
RETRY_BUDGET_RATIO = 0.2      # blastwall_issue19's [cluster.api.retry_budget] ratio


def blastwall_issue19(ports: list[int]) -> str:
    """The round-two config (issue 19): ONE config for every scenario, and it names no
    capacity. Concurrency is learnt from the replicas' own refusals (`adaptive =
    "capacity"`: a replica that answers 503 with N of ours in flight takes N - 1), low
    priority is shed at once past it and high waits briefly (`queue_from = "normal"`);
    a 503 from a replica that still serves is busy, one from a replica that has served
    nothing for 250 ms is broken and trips the breaker, which the health check then
    probes every 25 ms (no request waits on a dependency that is down); the per-try timeout
    learnt from the route's own latency and a replica that has answered nothing for 10 ×
    its latency taken out (a hang costs tens of milliseconds); retries under a budget,
    outlier detection, a static fallback. No hedging: a hedge cancels the slow replica's
    attempts, so its real latency is never learnt (gray p99 1.4-2.3× with it, 1.1× without,
    in the runs that chose). Not tuned per scenario.

    NOTE: this is the one place the benchmark's Blastwall config is written; the README
    shows it from here, and every scenario runs it."""
    endpoints = ", ".join(f'{{ address = "127.0.0.1:{port}" }}' for port in ports)
    return f"""
[proxy]
worker_threads = 1          # one worker, like nginx's worker_processes 1 and HAProxy's nbthread 1
deadline_header = "x-blastwall-timeout-ms"
priority_header = "x-blastwall-priority"
trusted_clients = ["127.0.0.1/32"]

[[listener]]
name = "bench"
listen = "127.0.0.1:0"

[[route]]
name = "all"
cluster = "api"
timeout = "{OVERALL_TIMEOUT_MS}ms"
per_try_timeout = "auto"          # 4 × the p99 of the last 10 s, within 50 ms and request_timeout
priority = "normal"

[route.retry]
attempts = {ATTEMPTS}
backoff = {{ base = "10ms", max = "100ms", jitter = "full" }}
on = ["connect_failure", "refused", "reset", "timeout", "gateway_error", "overloaded"]
retry_after_max = "100ms"

[route.fallback]
on = ["failed", "breaker_open", "shed", "timeout"]
static = {{ status = 503, headers = {{ "content-type" = "text/plain", "retry-after" = "1" }}, body = "degraded\\n" }}

[cluster.api]
balance = "peak_ewma"
connect_timeout = "{CONNECT_TIMEOUT_MS}ms"
request_timeout = "{PER_TRY_TIMEOUT_MS}ms"
endpoints = [{endpoints}]

[cluster.api.health_check]
kind = "http"
path = "/"
interval = "{HEALTH_INTERVAL_MS}ms"
timeout = "{CONNECT_TIMEOUT_MS}ms"
healthy_threshold = 2
unhealthy_threshold = 2

[cluster.api.retry_budget]
ratio = {RETRY_BUDGET_RATIO}
min_per_second = 10

# No capacity written down: the limit is the sum of what the replicas showed they take
# (a replica answering 503 with N of ours in flight takes N - 1; it grows back after a
# 2 quiet seconds). Past it, high priority waits up to 30 ms in a queue served highest first;
# low priority is shed at once (503 + Retry-After from the fallback).
[cluster.api.concurrency]
adaptive = "capacity"
queue = 50
queue_timeout = "30ms"
queue_from = "normal"

# Trips on 10 failed requests in a row (a broken 503 counts; a busy one does not) or half
# failing; while open, every request gets the fallback at once and the proxy probes with
# the health check every 25 ms; a pass lets one request through, whose success closes it.
[cluster.api.circuit_breaker]
consecutive_failures = 10
failure_rate_percent = 50
slow_call_percent = 80
slow_call_duration = "{PER_TRY_TIMEOUT_MS}ms"
minimum_calls = 20
window = "2s"
open_duration = "25ms"
half_open_probes = 1
probe = "health_check"

[cluster.api.outlier_detection]
consecutive_errors = 5
consecutive_gateway_errors = 5
interval = "1s"
base_ejection_time = "5s"
max_ejection_percent = 34
slow_call = {{ threshold = "100ms" }}
# A replica with requests out that has answered nothing for 10 × its own latency (a hang)
# takes no new request until it answers again.
stall_after = "auto"
"""


def blastwall_today(ports: list[int]) -> str:
    """Only keys the proxy parses before issue 4: peak-EWMA balancing, timeouts and active
    health checks. No retries, no breakers, no shedding."""
    endpoints = ", ".join(f'{{ address = "127.0.0.1:{port}" }}' for port in ports)
    return f"""
[[listener]]
name = "bench"
listen = "127.0.0.1:0"

[[route]]
name = "all"
cluster = "api"

[cluster.api]
balance = "peak_ewma"
connect_timeout = "{CONNECT_TIMEOUT_MS}ms"
request_timeout = "{PER_TRY_TIMEOUT_MS}ms"
endpoints = [{endpoints}]

[cluster.api.health_check]
kind = "http"
path = "/"
interval = "{HEALTH_INTERVAL_MS}ms"
timeout = "{CONNECT_TIMEOUT_MS}ms"
healthy_threshold = 2
unhealthy_threshold = 2
"""


def blastwall_issue4(ports: list[int]) -> str:
    """Blastwall's best config for these scenarios: retries under a budget, breakers,
    outlier detection, a bulkhead sized like HAProxy's maxconn with priority shedding, a
    static fallback, health checks (see bench/README.md for why each setting)."""
    endpoints = ", ".join(f'{{ address = "127.0.0.1:{port}" }}' for port in ports)
    return f"""
[proxy]
worker_threads = 1          # one worker, like nginx's worker_processes 1 and HAProxy's nbthread 1
deadline_header = "x-blastwall-timeout-ms"
priority_header = "x-blastwall-priority"
trusted_clients = ["127.0.0.1/32"]

[[listener]]
name = "bench"
listen = "127.0.0.1:0"

[[route]]
name = "all"
cluster = "api"
timeout = "{OVERALL_TIMEOUT_MS}ms"
per_try_timeout = "{PER_TRY_TIMEOUT_MS}ms"
priority = "normal"

[route.retry]
attempts = {ATTEMPTS}
backoff = {{ base = "10ms", max = "100ms", jitter = "full" }}
on = ["connect_failure", "refused", "reset", "timeout", "gateway_error", "overloaded"]
retry_after_max = "100ms"


[route.fallback]
on = ["failed", "breaker_open", "shed", "timeout"]
static = {{ status = 503, headers = {{ "content-type" = "text/plain", "retry-after" = "1" }}, body = "degraded\\n" }}

[cluster.api]
balance = "peak_ewma"
connect_timeout = "{CONNECT_TIMEOUT_MS}ms"
request_timeout = "{PER_TRY_TIMEOUT_MS}ms"
endpoints = [{endpoints}]

[cluster.api.health_check]
kind = "http"
path = "/"
interval = "{HEALTH_INTERVAL_MS}ms"
timeout = "{CONNECT_TIMEOUT_MS}ms"
healthy_threshold = 2
unhealthy_threshold = 2

[cluster.api.retry_budget]
ratio = 0.2
min_per_second = 10

# The cluster's bulkhead, sized like HAProxy's per-server maxconn (the replicas'
# capacity): a hung or saturated dependency holds only that many requests; the rest wait
# briefly in a queue served highest priority first, or are shed at once when the queue
# cannot be served in time, rather than queued behind doomed work.
[cluster.api.concurrency]
limit = {REPLICAS * OVERLOAD_CAPACITY}
queue = 50
queue_timeout = "100ms"

[cluster.api.circuit_breaker]
failure_rate_percent = 50
slow_call_percent = 80
slow_call_duration = "{PER_TRY_TIMEOUT_MS}ms"
minimum_calls = 20
window = "2s"
open_duration = "1s"
half_open_probes = 3

[cluster.api.endpoint_circuit_breaker]
consecutive_failures = 5
open_duration = "1s"
half_open_probes = 1

[cluster.api.outlier_detection]
consecutive_errors = 5
consecutive_gateway_errors = 5
interval = "1s"
base_ejection_time = "5s"
max_ejection_percent = 34
slow_call = {{ threshold = "100ms" }}
"""


BLASTWALL_CONFIGS = {"today": blastwall_today, "issue4": blastwall_issue4,
                     "issue19": blastwall_issue19}


# The anchors' variants: each scenario runs both, and issue 19's table names the better.
ANCHOR_VARIANTS = ("failure", "capacity")


def nginx_config(workdir: Path, port: int, ports: list[int], variant: str) -> str:
    """nginx in front of the replicas. least_conn is its nearest to peak-EWMA.

    `failure`: passive health (`max_fails=2 fail_timeout=5s`: open-source nginx has no
    active check) counting 502/503/504 as failures, and the next replica tried on them.
    `capacity`: `max_conns` per server at the replicas' known capacity; a 503 is relayed,
    neither retried nor counted against the replica (only errors and timeouts are). With
    no NGINX Plus `queue`, a request that finds every server full gets a 502 at once.
    """
    if variant == "failure":
        server_options = "max_fails=2 fail_timeout=5s"
        next_upstream = "error timeout http_502 http_503 http_504"
    elif variant == "capacity":
        server_options = f"max_fails=2 fail_timeout=5s max_conns={OVERLOAD_CAPACITY}"
        next_upstream = "error timeout http_502 http_504"
    else:
        raise ValueError(f"unknown nginx variant {variant!r}")
    servers = "\n".join(f"        server 127.0.0.1:{p} {server_options};" for p in ports)
    return f"""
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx.error.log error;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/nginx-body;
    proxy_temp_path {workdir}/nginx-proxy-temp;
    fastcgi_temp_path {workdir}/nginx-fastcgi;
    uwsgi_temp_path {workdir}/nginx-uwsgi;
    scgi_temp_path {workdir}/nginx-scgi;
    keepalive_requests 1000000;
    upstream backend {{
        least_conn;
{servers}
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # The same id on every attempt, so the mocks can count double deliveries.
            proxy_set_header X-Request-Id $request_id;
            proxy_connect_timeout {CONNECT_TIMEOUT_MS}ms;
            proxy_send_timeout {PER_TRY_TIMEOUT_MS}ms;
            proxy_read_timeout {PER_TRY_TIMEOUT_MS}ms;
            proxy_next_upstream {next_upstream};
            proxy_next_upstream_tries {ATTEMPTS};
            proxy_next_upstream_timeout {OVERALL_TIMEOUT_MS}ms;
        }}
    }}
}}
"""


def haproxy_config(port: int, ports: list[int], variant: str) -> str:
    """HAProxy in front of the replicas: leastconn, active checks to bring a server back,
    retries with redispatch to another server, the priority header mapped to a priority
    class (served first from a queue, when there is one).

    `failure`: passive health (`observe layer7 error-limit 5 on-error mark-down`: 5xx
    answers mark a server down) and retries on 502/503/504; no capacity written, so no
    queue. `capacity`: per-server `maxconn` at the replicas' known capacity, the excess
    waiting in HAProxy's queue (`timeout queue`) by priority class; only connection
    errors mark a server down (`observe layer4`) and a 503 is relayed, not retried.
    """
    if variant == "failure":
        server_options = "observe layer7 error-limit 5 on-error mark-down"
        retry_on = "conn-failure empty-response response-timeout 502 503 504"
    elif variant == "capacity":
        server_options = (f"observe layer4 error-limit 5 on-error mark-down "
                          f"maxconn {OVERLOAD_CAPACITY}")
        retry_on = "conn-failure empty-response response-timeout 502 504"
    else:
        raise ValueError(f"unknown haproxy variant {variant!r}")
    servers = "\n".join(f"    server r{i} 127.0.0.1:{p} check" for i, p in enumerate(ports))
    return f"""
global
    nbthread 1
    maxconn 8192

defaults
    mode http
    option http-keep-alive
    timeout connect {CONNECT_TIMEOUT_MS}ms
    timeout client 30s
    timeout server {PER_TRY_TIMEOUT_MS}ms
    timeout queue {PER_TRY_TIMEOUT_MS}ms
    timeout http-keep-alive 30s
    retries {ATTEMPTS - 1}
    option redispatch 1
    retry-on {retry_on}

frontend bench
    bind 127.0.0.1:{port}
    # The same id on every attempt, so the mocks can count double deliveries.
    unique-id-format %{{+X}}o%ci%cp%fi%fp%Ts%rt%pid
    unique-id-header X-Request-Id
    http-request set-priority-class int(-10) if {{ req.hdr(x-blastwall-priority) -m str high }}
    http-request set-priority-class int(10) if {{ req.hdr(x-blastwall-priority) -m str low }}
    default_backend replicas

backend replicas
    balance leastconn
    option httpchk GET /
    http-check expect status 200
    default-server inter {HEALTH_INTERVAL_MS}ms fall 2 rise 2 {server_options}
{servers}
"""
