#!/usr/bin/env bash
# Stops what scripts/kube/up.sh started, by the pids it recorded (newest first).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
RUN="${KUBE_RUN:-${KUBE_TOOLS:-$ROOT/.tools/kube}/run}"
[[ -f "$RUN/pids" ]] || { echo "kube-down: nothing running (no $RUN/pids)"; exit 0; }
mapfile -t pids < <(tac "$RUN/pids")
for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
for _ in $(seq 50); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    (( alive )) || break
    sleep 0.2
done
for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
rm -f "$RUN/pids" "$RUN/ready"
echo "kube-down: stopped ${#pids[@]} processes"
