"""Captures the Ray fixtures the tests read (fixtures/ray-2.60-session) from a real Ray.

usage: capture_fixtures.py OUT_DIR      (make fixtures writes to fixtures/ray-2.60-session.new)

For each event mode a Ray head (one CPU, loopback only) runs the same workload: a driver with
tasks square x4, boom() raising ValueError and an actor Counter, then two submitted jobs (one
exiting 3). After Ray stops, its session dir is copied trimmed (each file cut to its first
4 KB at a line end, event files in full where they carry data) with a MANIFEST.txt of every
original file and size. In HTTP mode every POST Ray pushes is recorded as JSON Lines.
Compare the new folder with the committed one before replacing it: tests name its ids.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
RAY = Path(sys.executable).parent / "ray"
TRIM = 4096
FULL_DIRS = ("logs/events", "logs/export_events")

DRIVER = """
import ray, time
ray.init()
@ray.remote
def square(x):
    return x * x
@ray.remote
def boom():
    raise ValueError("fixture failure")
@ray.remote
class Counter:
    def __init__(self):
        self.n = 0
    def add(self):
        self.n += 1
        return self.n
print(ray.get([square.remote(i) for i in range(4)]))
try:
    ray.get(boom.remote())
except Exception as e:
    print("boom failed as planned:", type(e).__name__)
c = Counter.remote()
print(ray.get(c.add.remote()))
time.sleep(3)
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder(BaseHTTPRequestHandler):
    posts = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Recorder.posts.append({"ts": time.time(), "path": self.path,
                               "headers": dict(self.headers), "body": body.decode()})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def run_mode(mode, extra_env, out, posts_file=None):
    temp = Path(tempfile.mkdtemp(prefix="rfx"))
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", **extra_env)
    gcs_port, dash_port = free_port(), free_port()
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", "--num-cpus=1", "--disable-usage-stats",
         "--node-ip-address=127.0.0.1", f"--port={gcs_port}", f"--dashboard-port={dash_port}",
         f"--temp-dir={temp}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env["RAY_ADDRESS"] = f"127.0.0.1:{gcs_port}"
    try:
        deadline = time.time() + 60
        while subprocess.run([str(RAY), "status"], env=env, capture_output=True).returncode:
            if time.time() > deadline:
                raise SystemExit(f"{mode}: Ray did not start")
            time.sleep(1)
        subprocess.run([sys.executable, "-c", DRIVER], env=env, check=True)
        jobs = dict(env, RAY_ADDRESS=f"http://127.0.0.1:{dash_port}")
        for name, code in ((f"probe-job-{mode}", 0), (f"probe-job-{mode}-fail", 3)):
            subprocess.run([str(RAY), "job", "submit", "--submission-id", name, "--",
                            sys.executable, "-c", f"import sys; print('{name}'); sys.exit({code})"],
                           env=jobs, capture_output=True)
        time.sleep(3)
    finally:
        head.send_signal(signal.SIGTERM)
        head.wait(timeout=90)
    session = next(p for p in temp.iterdir() if p.name.startswith("session_2"))
    dest = out / f"{session.name}_{mode}"
    copy_trimmed(session, dest)
    shutil.rmtree(temp, ignore_errors=True)
    if posts_file:
        with open(out / "http-aggregator-posts" / posts_file, "w") as f:
            for post in Recorder.posts:
                f.write(json.dumps(post) + "\n")
        Recorder.posts.clear()
    print(f"{mode}: {dest}")


def copy_trimmed(session, dest):
    rows = ["kind\tsize_bytes\tpath\tnote"]
    for path in sorted(session.rglob("*")):
        rel = path.relative_to(session).as_posix()
        if path.is_symlink() or path.is_dir():
            continue
        if path.is_socket():
            rows.append(f"socket\t0\t{rel}\t")
            continue
        size = path.stat().st_size
        grafana = rel.startswith("metrics/grafana/dashboards/")
        rows.append(f"file\t{size}\t{rel}\t{'listed, not copied' if grafana else ''}")
        if grafana:
            continue
        data = path.read_bytes()
        if not rel.startswith(FULL_DIRS) and len(data) > TRIM:
            cut = data.rfind(b"\n", 0, TRIM)
            data = data[: cut + 1 if cut > 0 else TRIM]
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "MANIFEST.txt").write_text("\n".join(rows) + "\n")


def main():
    out = Path(sys.argv[1]).resolve()
    if out.exists():
        raise SystemExit(f"{out} exists; remove it first")
    (out / "http-aggregator-posts").mkdir(parents=True)
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    push = f"http://127.0.0.1:{receiver.server_address[1]}/ray-events"
    http = {"RAY_enable_ray_event": "1", "RAY_enable_core_worker_ray_event_to_aggregator": "1",
            "RAY_DASHBOARD_AGGREGATOR_AGENT_EVENTS_EXPORT_ADDR": push}
    run_mode("default", {}, out)
    run_mode("export_api_on", {"RAY_enable_export_api_write": "1"}, out)
    run_mode("ray_event_http", dict(http, RAY_DASHBOARD_AGGREGATOR_AGENT_EXPOSABLE_EVENT_TYPES="ALL"),
             out, "posts_run_B.jsonl")
    run_mode("ray_event_http_snake_case",
             dict(http, RAY_DASHBOARD_AGGREGATOR_AGENT_PRESERVE_PROTO_FIELD_NAME="1"),
             out, "posts_run_C_snake_case.jsonl")
    shutil.copy(HERE.parent / "fixtures/ray-2.60-session/README.txt", out / "README.txt")
    receiver.shutdown()


if __name__ == "__main__":
    main()
