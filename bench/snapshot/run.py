"""What one head snapshot costs at 100k tasks (make bench-snapshot).

Starts a Ray 2.60 head, runs 100,000 tiny tasks, then takes the snapshot the collector takes
(the same State API calls, one at a time) and reports, per list: rows, bytes, wall time, and the
CPU seconds the head's dashboard spent answering. Compared with the dashboard's own task page
query (`ray list tasks --detail --limit 10000`), which is the same call.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

TASKS = int(os.environ.get("BENCH_TASKS", "100000"))
LIMIT = 10000
LISTS = ["tasks", "actors", "nodes", "placement_groups", "workers"]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def dashboard_pid():
    out = subprocess.run(["pgrep", "-f", "ray/dashboard/dashboard.py"], capture_output=True, text=True)
    return int(out.stdout.split()[0])


def get(url):
    with urllib.request.urlopen(url, timeout=120) as r:
        return r.read()


def main():
    port, gcs_port = 8299, 6399
    temp = tempfile.mkdtemp(prefix="rb", dir="/tmp")
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="disabled")
    subprocess.run(
        ["ray", "start", "--head", "--num-cpus=2", "--disable-usage-stats", f"--port={gcs_port}",
         f"--dashboard-port={port}", "--dashboard-host=127.0.0.1", "--temp-dir", temp],
        check=True, env=env, capture_output=True,
    )
    try:
        driver = (
            "import ray\n"
            "ray.init()\n"
            "@ray.remote\n"
            "def f(i):\n    return i\n"
            f"refs = [f.remote(i) for i in range({TASKS})]\n"
            "ray.get(refs)\n"
        )
        started = time.time()
        driver_env = dict(env, RAY_ADDRESS=f"127.0.0.1:{gcs_port}")
        run = subprocess.run(
            [sys.executable, "-c", driver], env=driver_env, capture_output=True, text=True
        )
        if run.returncode != 0:
            sys.exit(f"the driver failed:\n{run.stderr[-3000:]}")
        print(f"{TASKS} tasks ran in {time.time() - started:.1f} s")
        time.sleep(5)
        base = f"http://127.0.0.1:{port}"
        pid = dashboard_pid()
        print("| list | rows | bytes | wall s | dashboard CPU s |")
        print("|---|---|---|---|---|")
        total_wall, total_cpu = 0.0, 0.0
        for kind in LISTS:
            cpu0, t0 = cpu_seconds(pid), time.time()
            body = get(f"{base}/api/v0/{kind}?detail=true&limit={LIMIT}&timeout=30")
            wall, cpu = time.time() - t0, cpu_seconds(pid) - cpu0
            rows = len(json.loads(body)["data"]["result"]["result"])
            total_wall += wall
            total_cpu += cpu
            print(f"| {kind} | {rows} | {len(body)} | {wall:.2f} | {cpu:.2f} |")
        cpu0, t0 = cpu_seconds(pid), time.time()
        get(f"{base}/api/jobs/")
        print(f"| jobs | – | – | {time.time() - t0:.2f} | {cpu_seconds(pid) - cpu0:.2f} |")
        print(f"snapshot total: {total_wall:.2f} s wall, {total_cpu:.2f} s dashboard CPU "
              f"(once per SNAPSHOT_INTERVAL and per job end)")
    finally:
        subprocess.run(["ray", "stop", "--force"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
