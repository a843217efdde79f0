#!/bin/bash
# cluster.sh — several instances of a service behind HAProxy, sharing tasks through Redis, all
# on loopback ports of this machine (Debian: apt-get install redis-server haproxy).
#
#   examples/cluster/cluster.sh start SERVICE [N] [-- FLAGS...]   N instances (3), then HAProxy
#   examples/cluster/cluster.sh stop                               stops what start started
#   examples/cluster/cluster.sh status
#
# Ports: Redis on $IM_REDIS_PORT (6390), HAProxy on $IM_LB_PORT (8000), instance i on
# $IM_LB_PORT + i. Everything it makes lives in $IM_CLUSTER_DIR (/tmp/immersive-cluster): the
# Redis directory, haproxy.cfg, each process's log and pid. HAProxy checks GET /ready on each
# instance every second and sends requests only to those that answer 200; every instance
# answers for every task (its state is in Redis), so any balancing works.
set -eu

DIR=${IM_CLUSTER_DIR:-/tmp/immersive-cluster}
REDIS_PORT=${IM_REDIS_PORT:-6390}
LB_PORT=${IM_LB_PORT:-8000}

die() { echo "cluster.sh: $*" >&2; exit 1; }

wait_port() { # host port what: waits up to 10 s for a listener
    local t=0
    while ! (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
        t=$((t + 1))
        [ $t -lt 100 ] || die "$3 did not listen on $1:$2 (see $DIR)"
        sleep 0.1
    done
}

start() {
    [ $# -ge 1 ] || die "usage: cluster.sh start SERVICE [N] [-- FLAGS...]"
    svc=$1; shift
    n=3
    if [ $# -ge 1 ] && [ "$1" != "--" ]; then n=$1; shift; fi
    [ $# -ge 1 ] && [ "$1" = "--" ] && shift
    [ -x "$svc" ] || die "$svc is not an executable service"
    command -v redis-server >/dev/null || die "no redis-server (apt-get install redis-server)"
    command -v haproxy >/dev/null || die "no haproxy (apt-get install haproxy)"
    [ ! -f "$DIR/redis.pid" ] || die "already started in $DIR (cluster.sh stop first)"
    for p in "$REDIS_PORT" "$LB_PORT" $(seq $((LB_PORT + 1)) $((LB_PORT + n))); do
        ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || die "port $p is taken already"
    done
    mkdir -p "$DIR/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$DIR/redis" --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log"
    wait_port 127.0.0.1 "$REDIS_PORT" redis-server
    {
        echo "global"
        echo "    maxconn 4000"
        echo "defaults"
        echo "    mode http"
        echo "    timeout connect 2s"
        echo "    timeout client 60s"
        echo "    timeout server 60s"
        echo "    option http-keep-alive"
        echo "frontend api"
        echo "    bind 127.0.0.1:$LB_PORT"
        echo "    default_backend instances"
        echo "backend instances"
        echo "    balance roundrobin"
        echo "    option httpchk GET /ready"
        echo "    http-check expect status 200"
    } > "$DIR/haproxy.cfg"
    i=1
    while [ $i -le "$n" ]; do
        port=$((LB_PORT + i))
        "$svc" --host 127.0.0.1 --port "$port" --store "redis://127.0.0.1:$REDIS_PORT/0" "$@" \
            > "$DIR/instance-$i.log" 2>&1 &
        echo $! > "$DIR/instance-$i.pid"
        echo "    server i$i 127.0.0.1:$port check inter 1s fall 2 rise 1" >> "$DIR/haproxy.cfg"
        i=$((i + 1))
    done
    i=1
    while [ $i -le "$n" ]; do
        wait_port 127.0.0.1 $((LB_PORT + i)) "instance $i"
        i=$((i + 1))
    done
    haproxy -D -f "$DIR/haproxy.cfg" -p "$DIR/haproxy.pid"
    wait_port 127.0.0.1 "$LB_PORT" haproxy
    echo "redis on 127.0.0.1:$REDIS_PORT, $n instances on ports $((LB_PORT + 1))..$((LB_PORT + n)),"
    echo "haproxy on http://127.0.0.1:$LB_PORT ($DIR)"
}

stop_pid() { # file: TERM, then KILL after 10 s
    [ -f "$1" ] || return 0
    local pid t=0
    pid=$(cat "$1")
    if kill "$pid" 2>/dev/null; then
        while kill -0 "$pid" 2>/dev/null && [ $t -lt 100 ]; do sleep 0.1; t=$((t + 1)); done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$1"
}

stop() {
    stop_pid "$DIR/haproxy.pid"
    for f in "$DIR"/instance-*.pid; do stop_pid "$f"; done
    stop_pid "$DIR/redis.pid"
    echo "stopped ($DIR keeps the logs)"
}

status() {
    for f in "$DIR"/redis.pid "$DIR"/instance-*.pid "$DIR"/haproxy.pid; do
        [ -f "$f" ] || continue
        if kill -0 "$(cat "$f")" 2>/dev/null; then s=running; else s=gone; fi
        echo "$(basename "$f" .pid): $s"
    done
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    start) start "$@" ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: cluster.sh start SERVICE [N] [-- FLAGS...] | stop | status" ;;
esac
