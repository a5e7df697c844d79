#!/usr/bin/env bash
# What a reading learner costs the voters: the local three-node cluster takes 64 clients of order
# traffic (create, then pay) on its leader for DURATION_SECS, three ways:
#
#   1. no learner;
#   2. a learner (node 4) attached, nobody reading it;
#   3. the learner attached and `follow-changes` reading its change stream as fast as it can.
#
# Each round starts from an empty cluster and prints the voters' requests/s, and for round 3 the
# changes/s the follower read. On one machine the learner and its reader share the voters' cores,
# which a learner on its own host would not: both run at the idle scheduling class (`chrt -i 0`)
# so they take only CPU the voters leave, the closest one machine gets to a separate host.
#
# Environment: ROUNDS (default 2, each runs all three ways), DURATION_SECS (default 20),
# ORDERQ_BIN and CARGO_TARGET_DIR as for ops/local-cluster.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/orderq-target}"
BIN_DIR="$CARGO_TARGET_DIR/debug"
export ORDERQ_BIN="${ORDERQ_BIN:-$BIN_DIR/orderq}"
ROUNDS="${ROUNDS:-2}"
DURATION_SECS="${DURATION_SECS:-20}"
TOKEN="$(sed -n 's/^admin_token *= *"\(.*\)"/\1/p' ops/node1.toml)"
SECRET="$(sed -n 's/^cluster_secret *= *"\(.*\)"/\1/p' ops/node1.toml)"
LEARNER_DIR="orderq-cluster/learner-bench"

if [[ ! -x "$ORDERQ_BIN" || ! -x "$BIN_DIR/loadgen" || ! -x "$BIN_DIR/follow-changes" ]]; then
    cargo build --workspace --bins
fi

learner_pid=""
reader_pid=""
stop_all() {
    for pid in $reader_pid $learner_pid; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    reader_pid=""
    learner_pid=""
    ops/local-cluster.sh stop >/dev/null
}
trap stop_all EXIT

fresh_cluster() {
    stop_all
    rm -rf orderq-cluster
    ops/local-cluster.sh start >/dev/null
}

# The leader's requests/s under the order traffic, as loadgen prints it.
load() {
    "$BIN_DIR/loadgen" --targets http://127.0.0.1:8081 --scenario orders --clients 64 \
        --duration-secs "$DURATION_SECS" --admin-token "$TOKEN" --no-check 2>/dev/null |
        sed -n 's/^requests .* throughput \([0-9.]*\) req\/s$/\1/p'
}

add_learner() {
    mkdir -p "$LEARNER_DIR"
    chrt -i 0 "$ORDERQ_BIN" serve --node-id 4 --data-dir "$LEARNER_DIR/node4" \
        --api-addr 127.0.0.1:8084 --raft-addr 127.0.0.1:9084 --join \
        --cluster-secret "$SECRET" --admin-token "$TOKEN" >"$LEARNER_DIR/node4.log" 2>&1 &
    learner_pid=$!
    for _ in $(seq 100); do
        curl -sf http://127.0.0.1:8084/healthz >/dev/null && break
        sleep 0.1
    done
    curl -sf -X POST http://127.0.0.1:8081/admin/cluster/learners \
        -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -d '{"node_id": 4, "api_addr": "127.0.0.1:8084", "raft_addr": "127.0.0.1:9084"}' >/dev/null
}

for round in $(seq "$ROUNDS"); do
    fresh_cluster
    echo "round $round: no learner:               $(load) req/s"

    fresh_cluster
    add_learner
    echo "round $round: learner, not read:        $(load) req/s"

    fresh_cluster
    add_learner
    out="$LEARNER_DIR/changes.ndjson"
    touch "$out"
    chrt -i 0 "$BIN_DIR/follow-changes" --from http://127.0.0.1:8084 \
        --state "$LEARNER_DIR/changes.offset" --out "$out" --admin-token "$TOKEN" \
        >"$LEARNER_DIR/follow.log" 2>&1 &
    reader_pid=$!
    before=$(wc -l <"$out")
    rps=$(load)
    after=$(wc -l <"$out")
    echo "round $round: learner read by a follower: $rps req/s;" \
        "$(((after - before) / DURATION_SECS)) changes/s read"
done
