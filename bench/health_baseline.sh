#!/bin/sh
# What an operator would otherwise run from cron: the probes `inv health` makes, by hand, one
# after another, with curl, redis-cli and nginx -t. bench/health.py times it beside the CLI.
# Needs the sandbox's variables (ports, REDIS_PASSWORD) and OPSKIT_STATE_DIR in the environment.
set -u
state="$OPSKIT_STATE_DIR"
export REDISCLI_AUTH="$REDIS_PASSWORD"    # not in argv
r() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --no-auth-warning "$@" >/dev/null; }
get() { curl -s -o /dev/null -m 5 -w '%{http_code}' "http://127.0.0.1:$1" >/dev/null; }

for pidfile in "$state"/run/*.pid; do           # every service's process is alive
    kill -0 "$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' "$pidfile")" 2>/dev/null
done
r ping; r info; r set opskit:health:sh 1 px 10000; r get opskit:health:sh; r del opskit:health:sh
get "$UPSTREAM_PORT/health"
get "$KONG_ADMIN_PORT/status"; get "$KONG_STATUS_PORT/status/ready"
get "$KONG_ADMIN_PORT/routes"; get "$KONG_ADMIN_PORT/plugins"
get "$NGINX_PROXY_PORT/health"; get "$NGINX_PROXY_PORT/nginx_status"
get "$NGINX_PROXY_PORT/__opskit/chain-probe"
nginx -t -q -p "$state/nginx/nginx/" -c "$state/nginx/nginx/conf/nginx.conf" -e stderr \
    -g 'daemon off;' 2>/dev/null
get "$BACKEND_PORT/health"; get "$BACKEND_PORT/health/ready"
cat /proc/loadavg >/dev/null; free >/dev/null; df "$state" >/dev/null
