#!/usr/bin/env bash
# Ray History in one command: run a small Ray workload with the collector beside it, stop the
# cluster, then browse the dead cluster in the history server.
#
#   scripts/demo.sh                     # local-disk storage in .demo/storage
#   STORAGE=azureblob scripts/demo.sh   # a local Azurite instead
#   DEMO_EXIT=1 scripts/demo.sh         # non-interactive: check the URL answers, then exit 0
#   DEMO_PORT=9090 scripts/demo.sh      # history server port (default 8080, else a free one)
#
# Everything it starts runs in its own process group (setsid) and is stopped by PID on exit or
# Ctrl-C. Logs of every process are in .demo/logs/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${RAY_HISTORY_TOOLS:-$ROOT/.tools}"
DEMO_DIR="${DEMO_DIR:-$ROOT/.demo}"
STORAGE="${STORAGE:-local}"
DEMO_EXIT="${DEMO_EXIT:-0}"
CLUSTER=demo
NAMESPACE=default
VENV="$TOOLS/venv"
LOGS="$DEMO_DIR/logs"
STEPS=9
step_no=0
RAY_TMP=""
# PIDs of what this script started, stopped in reverse order on exit.
RAY_PID=""
COLLECTOR_PID=""
SERVER_PID=""
AZURITE_PID=""

step() {
  step_no=$((step_no + 1))
  printf '\n\033[1m[%d/%d] %s\033[0m\n' "$step_no" "$STEPS" "$*"
}
info() { printf '      %s\n' "$*"; }
die() {
  printf '\033[31merror:\033[0m %s\n' "$*" >&2
  exit 1
}
show_log() {
  [[ -f "$1" ]] && { echo "---- last lines of $1" >&2; tail -n 30 "$1" >&2; }
  return 0
}

# Sends SIGTERM to a PID and waits up to $2 seconds for it to exit, then SIGKILLs it.
stop_pid() {
  local pid="$1" wait_s="$2" name="$3"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  info "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq "$((wait_s * 5))"); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  # Each child leads its own process group (setsid), so this also ends what it started.
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n "$SERVER_PID$COLLECTOR_PID$RAY_PID$AZURITE_PID" ]]; then
    printf '\nStopping what the demo started…\n'
  fi
  stop_pid "$SERVER_PID" 10 "history server"
  stop_pid "$RAY_PID" 60 "Ray head"
  stop_pid "$COLLECTOR_PID" 30 "collector"
  stop_pid "$AZURITE_PID" 10 "Azurite"
  [[ -n "$RAY_TMP" ]] && rm -rf "$RAY_TMP"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_busy() {
  "$VENV/bin/python" -c 'import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))) != 0)' "$1"
}

# wait_http URL SECONDS NAME PID LOG: polls URL until it answers 200, fails if PID dies.
wait_http() {
  local url="$1" seconds="$2" name="$3" pid="$4" log="$5"
  for _ in $(seq "$((seconds * 4))"); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then show_log "$log"; die "$name exited early"; fi
    sleep 0.25
  done
  show_log "$log"
  die "$name did not answer $url within ${seconds}s"
}

case "$STORAGE" in
  local | azureblob) ;;
  *) die "STORAGE=$STORAGE is not supported by the demo (use local or azureblob)" ;;
esac
command -v cargo >/dev/null || die "cargo is needed (https://rustup.rs)"
command -v curl >/dev/null || die "curl is needed"
mkdir -p "$LOGS"

step "Installing tools (Ray venv, Azurite) with make tools"
make -C "$ROOT" --no-print-directory tools >"$LOGS/tools.log" 2>&1 || { show_log "$LOGS/tools.log"; die "make tools failed"; }
info "tools are in $TOOLS"

step "Building ray-history-collector and ray-history-server"
(cd "$ROOT" && cargo build --quiet -p ray-history-collector -p ray-history-server --bins) \
  >"$LOGS/build.log" 2>&1 || { show_log "$LOGS/build.log"; die "cargo build failed"; }
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
info "binaries in $BIN"

step "Preparing $STORAGE storage"
export STORAGE
if [[ "$STORAGE" == local ]]; then
  export LOCAL_STORAGE_PATH="$DEMO_DIR/storage"
  mkdir -p "$LOCAL_STORAGE_PATH"
  info "local directory $LOCAL_STORAGE_PATH"
else
  azurite_port="$(free_port)"
  setsid "$TOOLS/azurite/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$azurite_port" \
    --skipApiVersionCheck --loose --inMemoryPersistence --disableTelemetry >"$LOGS/azurite.log" 2>&1 &
  AZURITE_PID=$!
  endpoint="http://127.0.0.1:$azurite_port/devstoreaccount1"
  # Azurite's documented development account; it is public and only valid for the emulator.
  key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
  export AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$key;BlobEndpoint=$endpoint;"
  export AZURE_STORAGE_CONTAINER=ray-history-demo
  export STORAGE_CREATE_CONTAINER=true
  for _ in $(seq 80); do port_busy "$azurite_port" && break; sleep 0.25; done
  port_busy "$azurite_port" || { show_log "$LOGS/azurite.log"; die "Azurite did not start"; }
  info "Azurite at $endpoint, container $AZURE_STORAGE_CONTAINER (in memory: gone when the demo stops)"
fi

step "Starting the collector (watches Ray's temp dir, streams logs and events to storage)"
# Ray's socket paths must stay short: keep its temp dir directly under /tmp.
RAY_TMP="$(mktemp -d /tmp/rhdemo.XXXXXX)"
setsid "$BIN/ray-history-collector" run --ray-tmp-root "$RAY_TMP" --state-dir "$DEMO_DIR/collector-state" \
  --cluster-name "$CLUSTER" --namespace "$NAMESPACE" --node-type head --flush-interval 1s \
  --events-listen off --metrics-listen off >"$LOGS/collector.log" 2>&1 &
COLLECTOR_PID=$!
sleep 1
kill -0 "$COLLECTOR_PID" 2>/dev/null || { show_log "$LOGS/collector.log"; die "the collector exited"; }
info "collector pid $COLLECTOR_PID, watching $RAY_TMP"

step "Starting a local Ray head"
gcs_port="$(free_port)"
dashboard_port="$(free_port)"
# Export event files give the history server full task, actor and job records; drivers read
# the setting from their own environment, so it is exported for the workload below too.
export RAY_enable_export_api_write=1 RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
# Every port is chosen here: Ray's fixed defaults collide with other heads on the machine.
PATH="$VENV/bin:$PATH" setsid "$VENV/bin/ray" start --head --block --num-cpus=1 --disable-usage-stats \
  --include-dashboard=true --dashboard-host=127.0.0.1 --node-ip-address=127.0.0.1 \
  --port="$gcs_port" --dashboard-port="$dashboard_port" \
  --ray-client-server-port="$(free_port)" --dashboard-agent-listen-port="$(free_port)" \
  --dashboard-agent-grpc-port="$(free_port)" --metrics-export-port="$(free_port)" \
  --runtime-env-agent-port="$(free_port)" --temp-dir "$RAY_TMP" >"$LOGS/ray.log" 2>&1 &
RAY_PID=$!
wait_http "http://127.0.0.1:$dashboard_port/api/version" 120 "Ray" "$RAY_PID" "$LOGS/ray.log"
SESSION="$(basename "$(readlink -f "$RAY_TMP/session_latest")")"
info "session $SESSION, Ray dashboard http://127.0.0.1:$dashboard_port"

step "Running the sample workload (tasks, a failing task, an actor, a submitted job)"
RAY_ADDRESS="127.0.0.1:$gcs_port" "$VENV/bin/python" "$ROOT/scripts/demo_workload.py" \
  >"$LOGS/workload.log" 2>&1 || { show_log "$LOGS/workload.log"; die "the workload failed"; }
grep -E '^(squares|boom|counter)' "$LOGS/workload.log" | sed 's/^/      driver: /'
PATH="$VENV/bin:$PATH" "$VENV/bin/ray" job submit --address "http://127.0.0.1:$dashboard_port" \
  --submission-id demo-job -- python "$ROOT/scripts/demo_workload.py" job \
  >"$LOGS/job.log" 2>&1 || { show_log "$LOGS/job.log"; die "the submitted job failed"; }
info "job demo-job: $(grep -m1 -o 'demo job total: [0-9]*' "$LOGS/job.log" || echo finished)"

step "Stopping Ray (the cluster is gone; only storage remains)"
stop_pid "$RAY_PID" 60 "Ray head"
RAY_PID=""
stop_pid "$COLLECTOR_PID" 30 "collector (SIGTERM: final flush, session marked finished)"
COLLECTOR_PID=""

step "Starting the history server"
port="${DEMO_PORT:-8080}"
if port_busy "$port"; then
  [[ -n "${DEMO_PORT:-}" ]] && die "port $port is in use (DEMO_PORT)"
  port="$(free_port)"
  info "port 8080 is in use, using $port"
fi
dashboard_dir="$("$VENV/bin/python" -c 'import os, ray.dashboard as d; print(os.path.join(os.path.dirname(d.__file__), "client", "build"))')"
setsid "$BIN/ray-history-server" serve --listen "127.0.0.1:$port" --ray-dashboard-dir "$dashboard_dir" \
  >"$LOGS/server.log" 2>&1 &
SERVER_PID=$!
URL="http://127.0.0.1:$port"
wait_http "$URL/api/sessions" 60 "the history server" "$SERVER_PID" "$LOGS/server.log"

step "Checking that the server shows the demo session"
session_url="$URL/#/s/$NAMESPACE/$CLUSTER/$SESSION"
for _ in $(seq 60); do
  curl -fsS "$URL/api/sessions?cluster=$CLUSTER" 2>/dev/null | grep -q "\"$SESSION\"" && break
  sleep 0.5
done
curl -fsS "$URL/api/sessions?cluster=$CLUSTER" | grep -q "\"$SESSION\"" \
  || { show_log "$LOGS/server.log"; die "the server does not list $SESSION"; }
curl -fsS "$URL/api/sessions/$NAMESPACE/$CLUSTER/$SESSION" >/dev/null \
  || { show_log "$LOGS/server.log"; die "the server cannot load $SESSION"; }
info "ok: $SESSION is stored and served"

printf '\n\033[1mRay History is running.\033[0m Open:\n\n'
printf '  sessions        %s/\n' "$URL"
printf '  demo session    %s\n' "$session_url"
printf '  Ray dashboard   %s/sessions/%s/%s/%s/\n\n' "$URL" "$NAMESPACE" "$CLUSTER" "$SESSION"
if [[ "$DEMO_EXIT" == 1 ]]; then
  echo "DEMO_EXIT=1: stopping now."
  exit 0
fi
echo "Press Ctrl-C to stop."
wait "$SERVER_PID"
