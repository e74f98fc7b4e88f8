#!/bin/bash
# usage: bench/rss.sh BLASTWALL_BINARY   (CONNS=8 for 8 connections; default 256)
# Peak resident memory (VmHWM) of blastwall with the bench config after 4 s of wrk load
# through it to an nginx upstream; both on 127.0.0.1.
set -e
work=$(mktemp -d); up=$((20000 + RANDOM % 5000)); port=$((up+1))
cat > $work/up.conf <<EOC
worker_processes 1; daemon off; pid $work/up.pid; error_log $work/up.err warn;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $work/b; proxy_temp_path $work/p; fastcgi_temp_path $work/f; uwsgi_temp_path $work/u; scgi_temp_path $work/s;
keepalive_requests 1000000; server { listen 127.0.0.1:$up; default_type text/plain; location / { return 200 "ok\n"; } } }
EOC
nginx -c $work/up.conf & ng=$!
printf '[proxy]\nworker_threads = 1\n[[listener]]\nname = "b"\nlisten = "127.0.0.1:%s"\n[[route]]\nname = "all"\ncluster = "u"\n[cluster.u]\nendpoints = [{ address = "127.0.0.1:%s" }]\n' $port $up > $work/bw.toml
$1 run -c $work/bw.toml --log warn >/dev/null 2>&1 & p=$!
sleep 1.5
wrk -t2 -c${CONNS:-256} -d4s http://127.0.0.1:$port/ | grep "Requests/sec"
grep -E "VmHWM|VmRSS" /proc/$p/status | tr '\n' ' '; echo
kill $p $ng; wait 2>/dev/null || true
