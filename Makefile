# Everything a fresh Debian machine with Rust needs: `make run` serves a single node on
# 127.0.0.1:8080, `make test` runs every check CI runs (.ci/run is `make test`).
#
# One cargo build dir outside the clone, reused by every target, by ops/local-cluster.sh and by
# every fresh clone (CI included). All cargo runs use the dev profile, which the workspace tunes
# (dependencies at opt-level 3), so RocksDB is compiled once and stays fast.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/orderq-target

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

# Build dependencies from Debian: librocksdb-sys generates its bindings with libclang; the clock
# fault test preloads libfaketime. The chaos harness's power-loss filesystem runs on FUSE:
# `fuse3` brings `fusermount3` (mounting without root) and the kernel module's set-up; the
# filesystem itself needs no libfuse. `prometheus` brings `prometheus` and `promtool`, which the
# metrics and alerting tests run (t85_metrics, t86_prometheus). The console's browser test drives
# Debian's headless Chromium through `chromedriver` (cluster-tests/tests/t69_console_browser.rs).
APT_PACKAGES := clang libclang-dev faketime fuse3 prometheus chromium chromium-driver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The API fuzz test (cluster-tests/tests/t80_api_fuzz.rs) runs schemathesis from PyPI, pinned: a
# new release brings new checks, which should arrive as a deliberate upgrade. `pip install --user`
# puts it in ~/.local/bin, added to PATH for the targets below; inside a virtualenv a plain
# install is the one that works, and Debian's own Python refuses both without
# --break-system-packages (PEP 668), hence the three tries.
SCHEMATHESIS_VERSION := 4.32.5
export PATH := $(HOME)/.local/bin:$(PATH)

# The local cluster's admin token, read from its config so the two never drift apart.
ADMIN_TOKEN := $(shell sed -n 's/^admin_token *= *"\(.*\)"/\1/p' ops/node1.toml)
BENCH_TARGETS := http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083

.PHONY: deps build run test bench bench-seckill bench-peers bench-sm cluster-start cluster-stop

deps:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		$(SUDO) apt-get update; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $(APT_PACKAGES); \
	fi
	@if ! command -v schemathesis >/dev/null 2>&1; then \
		python3 -m pip install --user "schemathesis==$(SCHEMATHESIS_VERSION)" \
			|| python3 -m pip install "schemathesis==$(SCHEMATHESIS_VERSION)" \
			|| python3 -m pip install --user --break-system-packages \
				"schemathesis==$(SCHEMATHESIS_VERSION)"; \
	fi

build: deps
	cargo build --workspace --bins

run: deps
	cargo run --bin orderq -- serve

# The cluster tests start real orderq processes, so the binaries are built before the tests run.
# The write-path fault test and the two mutant checks (t66: log-skip-sync, t67: apply-clock-skew)
# also need the failpoints build of orderq, kept beside it as orderq-failpoints; both builds stay
# cached, so the second one only links.
test: deps
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo build -p orderq-node --bin orderq --features failpoints
	cp "$(CARGO_TARGET_DIR)/debug/orderq" "$(CARGO_TARGET_DIR)/debug/orderq-failpoints"
	cargo build --workspace --bins
	cargo test --workspace --all-targets

# Three local nodes under load for 20 s; the cluster is stopped however the load generator ends.
bench: deps build
	ops/local-cluster.sh start
	trap 'ops/local-cluster.sh stop' EXIT; \
	cargo run --bin loadgen -- --targets $(BENCH_TARGETS) --clients 64 --duration-secs 20 \
		--admin-token $(ADMIN_TOKEN)

# A flash sale on the three local nodes: 200,000 purchases of 10,000 units by 256 clients.
bench-seckill: deps build
	ops/local-cluster.sh start
	trap 'ops/local-cluster.sh stop' EXIT; \
	cargo run --bin loadgen -- --targets $(BENCH_TARGETS) --scenario seckill --clients 256 \
		--requests 200000 --units 10000 --users 100000 --admin-token $(ADMIN_TOKEN)

# orderq beside etcd, NATS JetStream and Redis on this machine, interleaved pairs on fresh
# clusters, with CPU per operation and the ratios (bench/peers.sh; installs the peers when
# missing). Not part of `make test`. Quick run: make bench-peers BENCH_ARGS="--duration 5 --pairs 1"
bench-peers: deps build
	bench/peers.sh $(BENCH_ARGS)

# Micro-benchmarks of apply per command kind and of the codecs (sm/benches). The dev profile is
# the one the workspace optimises and `make run` serves; plain `cargo bench` would build RocksDB
# a second time in the release profile.
# Then what an order costs with RocksDB's background work, and its SST bytes (sm/examples/order_footprint.rs).
bench-sm: deps
	cargo bench -p orderq-sm --profile dev $(BENCH_ARGS)
	cargo run -p orderq-sm --example order_footprint

cluster-start: build
	ops/local-cluster.sh start

cluster-stop:
	ops/local-cluster.sh stop
