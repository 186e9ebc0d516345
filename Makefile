# Ray History — build, test and run. Every target installs what it needs into .tools/.
SHELL := /bin/bash
TOOLS ?= $(CURDIR)/.tools
AZURITE_VERSION := 3.37.0
RAY_VERSION := 2.60.0
AZURITE := $(TOOLS)/azurite/node_modules/.bin/azurite-blob
VENV := $(TOOLS)/venv
RAY := $(VENV)/bin/ray
MOTO_VERSION := 5.2.5
# Renamed when the list below changes, so existing tool folders install the additions.
PYTOOLS := $(VENV)/.pytools-2-installed
export RAY_HISTORY_TOOLS := $(TOOLS)
CARGO ?= cargo

.PHONY: all build tools test test-unit lint fmt check-fmt clippy module-cycles bench bench-collector bench-server bench-snapshot demo run e2e-kind chart clean fuzz kube-tools kube-up kube-down fixtures

all: build

build:
	$(CARGO) build --release --workspace --bins

tools: disk-free $(AZURITE) $(RAY) $(PYTOOLS) apt-tools kube-tools

# The tools and a test build need some 15 GB; say how much there is before starting, so a
# full disk shows as the cause.
.PHONY: disk-free
disk-free:
	@echo "==> free disk here: $$(df -h --output=avail . | tail -1 | tr -d ' ')"

# The local Kubernetes control plane's binaries and fake-gcs-server (the GCS server of the
# tests), built from Go modules (versions pinned in
# scripts/kube/versions.env; each is rebuilt only when its version changes).
kube-tools:
	scripts/kube/build.sh

# A local control plane on loopback for trying the chart without Docker (README: "Try it on a
# local control plane"); kube-down stops it by the PIDs kube-up recorded.
kube-up: kube-tools
	scripts/kube/up.sh

kube-down:
	scripts/kube/down.sh

# Debian packages the tests use (headless browser for the UI tests, shellcheck for scripts).
APT_TEST_PACKAGES := chromium chromium-driver shellcheck
APT_BENCH_PACKAGES := rclone wrk
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "==> apt-get install$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

.PHONY: apt-tools apt-bench-tools
apt-tools:
	$(call apt_install,$(APT_TEST_PACKAGES))

apt-bench-tools:
	$(call apt_install,$(APT_BENCH_PACKAGES))

$(AZURITE):
	@echo "==> installing azurite@$(AZURITE_VERSION) into $(TOOLS)/azurite"
	mkdir -p $(TOOLS)/azurite
	cd $(TOOLS)/azurite && npm install --no-audit --no-fund --loglevel=error azurite@$(AZURITE_VERSION) >/dev/null
	@test -x $@

$(RAY):
	@echo "==> installing ray[default]==$(RAY_VERSION) into $(VENV)"
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --no-cache-dir --disable-pip-version-check 'ray[default]==$(RAY_VERSION)'
	@test -x $@

$(PYTOOLS): $(RAY)
	@echo "==> installing kubernetes-validate, helm-sdkpy and moto (the S3 server of the tests) into $(VENV)"
	$(VENV)/bin/pip install --quiet --no-cache-dir --disable-pip-version-check kubernetes-validate 'moto[server]==$(MOTO_VERSION)'
	$(VENV)/bin/pip install --quiet --no-cache-dir --disable-pip-version-check --ignore-requires-python helm-sdkpy
	touch $@

# The README's test command: lint, then every test against real Azurite and Ray.
test: tools check-fmt clippy module-cycles
	$(CARGO) test --workspace --all-targets --all-features --no-fail-fast

test-unit:
	$(CARGO) test --workspace --lib

check-fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

fmt:
	$(CARGO) fmt --all

lint: check-fmt clippy module-cycles

# Sibling modules never import each other in a circle.
module-cycles:
	python3 scripts/check-module-cycles.py

# The main job: record a local Ray cluster with the collector, then browse it in the history
# server (local-disk storage; STORAGE=azureblob uses a local Azurite; DEMO_EXIT=1 exits after
# checking the URL answers).
demo run: $(AZURITE) $(RAY)
	scripts/demo.sh

# Benchmarks against the named peers in one run (release builds; figures printed at the end).
bench: bench-collector bench-server bench-snapshot

bench-collector: tools apt-bench-tools
	bench/collector/run.sh

bench-server: tools apt-bench-tools
	$(CARGO) build --release -p ray-history-server --bins --example bench-server
	./target/release/examples/bench-server run

# What one head snapshot of the State API costs the head at 100k tasks.
bench-snapshot: $(RAY)
	PATH=$(VENV)/bin:$$PATH $(VENV)/bin/python bench/snapshot/run.py

# Long fuzzing under libFuzzer (nightly Rust, cargo-fuzz from crates.io into .tools/cargo):
# FUZZ_SECONDS per target. The inputs it finds go to fuzz/target/corpus/<target>/ (the kept
# seeds in fuzz/corpus/ stay as they are); crashes land in fuzz/artifacts/<target>/: keep each
# one in fuzz/regressions/<target>/ once fixed (make test replays them).
CARGO_FUZZ := $(TOOLS)/cargo/bin/cargo-fuzz
FUZZ_SECONDS ?= 300
FUZZ_TARGETS := events layout_key connection_string range_header log_path

$(CARGO_FUZZ):
	$(CARGO) install --quiet --locked --root $(TOOLS)/cargo cargo-fuzz

fuzz: $(CARGO_FUZZ)
	set -e; for target in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/target/corpus/$$target; \
	  PATH=$(TOOLS)/cargo/bin:$$PATH cargo +nightly fuzz run --fuzz-dir fuzz $$target \
	    fuzz/target/corpus/$$target fuzz/corpus/$$target \
	    $$(test -d fuzz/regressions/$$target && echo fuzz/regressions/$$target) \
	    -- -max_total_time=$(FUZZ_SECONDS); \
	done

# Re-capture the Ray fixtures the tests read from a real Ray into fixtures/ray-2.60-session.new
# (compare, then replace fixtures/ray-2.60-session: tests name ids from it).
fixtures: $(RAY)
	$(VENV)/bin/python scripts/capture_fixtures.py fixtures/ray-2.60-session.new

# Regenerate the chart's CRDs from the Rust types (a test checks they are in sync).
chart:
	$(CARGO) run --quiet -p ray-history-operator -- crd > charts/ray-history/crds/rayhistory.io.yaml

# Full story on kind with Azurite (needs Docker and kind; not available on the build machines).
e2e-kind:
	scripts/e2e-kind.sh

clean:
	$(CARGO) clean
	rm -rf $(TOOLS)
