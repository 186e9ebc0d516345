#!/usr/bin/env bash
# Collector benchmark: `ray-history-collector sync` vs `rclone copy` (one-shot, 2,000 files,
# ~1 GiB) and a 60-second streaming run, both against a real Azurite. Needs `make tools` and
# rclone (Debian: apt-get install -y rclone). Usage: bench/collector/run.sh [all|one-shot|streaming]
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v rclone >/dev/null || { echo "rclone is missing: apt-get install -y rclone" >&2; exit 1; }
cargo build --release -p ray-history-collector --bin ray-history-collector --example bench-collector
exec target/release/examples/bench-collector "${1:-all}"
