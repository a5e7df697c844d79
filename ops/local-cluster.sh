#!/usr/bin/env bash
# Three orderq nodes on 127.0.0.1 (API 8081-8083, Raft 9081-9083), configured by
# ops/node{1,2,3}.toml, data, logs and pid files under ./orderq-cluster/.
#
#   ops/local-cluster.sh start    build the binary if missing, start the nodes, wait until ready
#   ops/local-cluster.sh stop     stop the nodes (TERM, then KILL after a bounded wait)
#   ops/local-cluster.sh status   each node's process, and its view of the cluster
#
# Environment:
#   ORDERQ_BIN               the binary (default: $CARGO_TARGET_DIR/debug/orderq)
#   CARGO_TARGET_DIR         the cargo build dir (default: $HOME/.cache/orderq-target)
#   ORDERQ_READY_TIMEOUT_SECS  how long start waits for /readyz on every node (default 60)
#   ORDERQ_STOP_TIMEOUT_SECS   how long stop waits after TERM before KILL (default 10)
#
# Restarting resumes from the data directories; `rm -rf orderq-cluster` starts from scratch.
set -euo pipefail

# The configs use paths relative to the repo root, so always run from there.
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/orderq-target}"
BIN="${ORDERQ_BIN:-$CARGO_TARGET_DIR/debug/orderq}"
CLUSTER_DIR="orderq-cluster"
NODES=(1 2 3)
READY_TIMEOUT_SECS="${ORDERQ_READY_TIMEOUT_SECS:-60}"
STOP_TIMEOUT_SECS="${ORDERQ_STOP_TIMEOUT_SECS:-10}"

config_of() { echo "ops/node$1.toml"; }
pid_file_of() { echo "$CLUSTER_DIR/node$1.pid"; }
log_of() { echo "$CLUSTER_DIR/node$1.log"; }

# A top-level string key of a node's config file, e.g. `toml_string 1 api_addr`.
toml_string() {
    sed -n "s/^$2[[:space:]]*=[[:space:]]*\"\(.*\)\"[[:space:]]*\$/\1/p" "$(config_of "$1")" | head -n 1
}

api_url_of() { echo "http://$(toml_string "$1" api_addr)"; }

# The pid in node N's pid file, if the file holds one.
recorded_pid_of() {
    local pid_file pid
    pid_file="$(pid_file_of "$1")"
    [[ -f "$pid_file" ]] || return 1
    pid="$(cat "$pid_file")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    echo "$pid"
}

# Whether a process is alive: it exists and is not a zombie (a node that crashed while this
# script is its parent stays a zombie until the script exits).
running() {
    kill -0 "$1" 2>/dev/null || return 1
    if [[ -r "/proc/$1/stat" ]]; then
        [[ "$(cut -d ' ' -f 3 "/proc/$1/stat")" != "Z" ]] || return 1
    fi
}

# The pid of node N, if that process is alive and is still our orderq node (a stale pid file
# may name a recycled pid that now belongs to something else).
live_pid_of() {
    local pid
    pid="$(recorded_pid_of "$1")" || return 1
    running "$pid" || return 1
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--config $(config_of "$1")" || return 1
    fi
    echo "$pid"
}

http_status() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true
}

ensure_binary() {
    if [[ -x "$BIN" ]]; then
        return
    fi
    if [[ -n "${ORDERQ_BIN:-}" ]]; then
        echo "ORDERQ_BIN=$ORDERQ_BIN is not an executable file" >&2
        exit 1
    fi
    echo "building $BIN"
    cargo build --bin orderq
}

start() {
    ensure_binary
    mkdir -p "$CLUSTER_DIR"
    local n pid
    for n in "${NODES[@]}"; do
        if pid="$(live_pid_of "$n")"; then
            echo "node$n already running (pid $pid)"
            continue
        fi
        nohup "$BIN" serve --config "$(config_of "$n")" >>"$(log_of "$n")" 2>&1 </dev/null &
        echo $! >"$(pid_file_of "$n")"
        echo "node$n started (pid $!, log $(log_of "$n"))"
    done
    wait_until_ready
}

wait_until_ready() {
    local deadline=$((SECONDS + READY_TIMEOUT_SECS)) n pid
    local -a pending
    while true; do
        pending=()
        for n in "${NODES[@]}"; do
            # Liveness only: right after the fork the child has not exec'd the binary yet.
            if ! pid="$(recorded_pid_of "$n")" || ! running "$pid"; then
                echo "node$n exited during start; last lines of $(log_of "$n"):" >&2
                tail -n 20 "$(log_of "$n")" >&2 || true
                stop
                exit 1
            fi
            if [[ "$(http_status "$(api_url_of "$n")/readyz")" != "200" ]]; then
                pending+=("node$n")
            fi
        done
        if ((${#pending[@]} == 0)); then
            echo "cluster ready: $(api_url_of 1) $(api_url_of 2) $(api_url_of 3)"
            return
        fi
        if ((SECONDS >= deadline)); then
            echo "not ready after ${READY_TIMEOUT_SECS}s: ${pending[*]}" >&2
            for n in "${NODES[@]}"; do
                echo "--- last lines of $(log_of "$n")" >&2
                tail -n 20 "$(log_of "$n")" >&2 || true
            done
            stop
            exit 1
        fi
        sleep 0.5
    done
}

stop() {
    local n pid deadline
    local -a running=()
    for n in "${NODES[@]}"; do
        if pid="$(live_pid_of "$n")"; then
            kill -TERM "$pid" 2>/dev/null || true
            running+=("$n")
        else
            rm -f "$(pid_file_of "$n")"
        fi
    done
    deadline=$((SECONDS + STOP_TIMEOUT_SECS))
    for n in "${running[@]}"; do
        while pid="$(live_pid_of "$n")" && ((SECONDS < deadline)); do
            sleep 0.2
        done
        if pid="$(live_pid_of "$n")"; then
            echo "node$n did not stop within ${STOP_TIMEOUT_SECS}s; killing pid $pid"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$(pid_file_of "$n")"
        echo "node$n stopped"
    done
}

status() {
    local n pid token all_up=0
    for n in "${NODES[@]}"; do
        if pid="$(live_pid_of "$n")"; then
            echo "node$n: running (pid $pid), $(api_url_of "$n")"
        else
            echo "node$n: not running"
            all_up=1
            continue
        fi
        token="$(toml_string "$n" admin_token)"
        curl -s --max-time 2 -H "Authorization: Bearer $token" "$(api_url_of "$n")/admin/cluster" ||
            echo "  (no answer from /admin/cluster)"
        echo
    done
    return "$all_up"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
