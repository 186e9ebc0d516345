"""A small in-memory Kubernetes API server for tests: discovery, get/list/create/replace,
server-side apply and merge patches (a deep merge, enough for our objects), status
subresources, and watches that deliver changes since a resourceVersion. Not a real API server:
no validation, no admission, no garbage collection.

Run as a program it prints its port on the first line and serves until killed; GET /__store
returns every stored object.
"""

import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# group/version -> [(plural, kind, namespaced)]
RESOURCES = {
    "v1": [
        ("namespaces", "Namespace", False), ("secrets", "Secret", True),
        ("configmaps", "ConfigMap", True), ("services", "Service", True),
        ("serviceaccounts", "ServiceAccount", True), ("pods", "Pod", True),
    ],
    "apps/v1": [("deployments", "Deployment", True)],
    "rbac.authorization.k8s.io/v1": [
        ("clusterroles", "ClusterRole", False), ("clusterrolebindings", "ClusterRoleBinding", False),
        ("roles", "Role", True), ("rolebindings", "RoleBinding", True),
    ],
    "admissionregistration.k8s.io/v1": [
        ("mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False),
    ],
    "apiextensions.k8s.io/v1": [("customresourcedefinitions", "CustomResourceDefinition", False)],
    "coordination.k8s.io/v1": [("leases", "Lease", True)],
    "networking.k8s.io/v1": [("networkpolicies", "NetworkPolicy", True)],
    "events.k8s.io/v1": [("events", "Event", True)],
    "rayhistory.io/v1alpha1": [
        ("historystorages", "HistoryStorage", True), ("historyservers", "HistoryServer", True),
    ],
    "cert-manager.io/v1": [("issuers", "Issuer", True), ("certificates", "Certificate", True)],
}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
PLURALS = {p for rs in RESOURCES.values() for p, _, _ in rs}


class Store:
    """Objects keyed by (groupVersion, namespace, plural, name), with a global resourceVersion."""

    def __init__(self):
        self.lock = threading.Condition()
        self.objects = {}
        self.version = 100

    def write(self, key, obj):
        with self.lock:
            self.version += 1
            meta = obj.setdefault("metadata", {})
            meta["resourceVersion"] = str(self.version)
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
            meta.setdefault("generation", 1)
            self.objects[key] = obj
            self.lock.notify_all()
            return obj

    def matching(self, gv, ns, plural):
        return [o for (g, n, p, _), o in self.objects.items()
                if g == gv and p == plural and (ns is None or n == ns)]


STORE = Store()


def parse(path):
    """Splits an API path into (groupVersion, namespace, plural, name, subresource)."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return None
    if parts[0] == "api":
        gv, rest = "v1", parts[2:]
    elif parts[0] == "apis" and len(parts) >= 3:
        gv, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        return None
    ns = None
    if len(rest) >= 2 and rest[0] == "namespaces" and rest[1] and len(rest) > 2:
        ns, rest = rest[1], rest[2:]
    if not rest or rest[0] not in PLURALS:
        return None
    plural, name = rest[0], rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    return gv, ns, plural, name, sub


def merge(into, patch):
    for key, value in patch.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value
    return into


def group_list():
    groups = {}
    for gv in RESOURCES:
        if "/" in gv:
            g, v = gv.split("/")
            groups.setdefault(g, []).append(v)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
         "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
        for g, vs in groups.items()]}


def resource_list(gv):
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": [
        {"name": p, "singularName": "", "namespaced": ns, "kind": k, "verbs": VERBS}
        for p, k, ns in RESOURCES[gv]]}


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
            "code": code, "message": message}


class Handler(BaseHTTPRequestHandler):
    # Hooks a wrapping program may set.
    on_create = None
    opaque_body = None

    def log_message(self, *args):
        pass

    def send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def split(self):
        url = urlsplit(self.path)
        return url.path.rstrip("/"), {k: v[0] for k, v in parse_qs(url.query).items()}

    def body(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if "json" not in (self.headers.get("Content-Type") or "") and "yaml" not in (self.headers.get("Content-Type") or ""):
            return Handler.opaque_body(self) if Handler.opaque_body else {}
        return json.loads(raw or b"{}")

    def do_GET(self):
        path, query = self.split()
        if path == "/__store":
            with STORE.lock:
                return self.send(200, list(STORE.objects.values()))
        if path == "/version":
            return self.send(200, {"major": "1", "minor": "35", "gitVersion": "v1.35.0", "platform": "linux/amd64"})
        if path == "/api":
            return self.send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
        if path == "/apis":
            return self.send(200, group_list())
        if path == "/api/v1":
            return self.send(200, resource_list("v1"))
        parts = path.split("/")
        if len(parts) == 4 and parts[1] == "apis" and f"{parts[2]}/{parts[3]}" in RESOURCES:
            return self.send(200, resource_list(f"{parts[2]}/{parts[3]}"))
        target = parse(path)
        if target is None:
            return self.send(404, status(404, "NotFound", path))
        gv, ns, plural, name, _ = target
        if name is None:
            if query.get("watch") in ("true", "1"):
                return self.watch(gv, ns, plural, int(query.get("resourceVersion") or 0))
            with STORE.lock:
                items = STORE.matching(gv, ns, plural)
                version = str(STORE.version)
            return self.send(200, {"kind": "List", "apiVersion": gv, "metadata": {"resourceVersion": version},
                                   "items": items})
        with STORE.lock:
            obj = STORE.objects.get((gv, ns, plural, name))
        if obj is None:
            return self.send(404, status(404, "NotFound", f"{plural} {name} not found"))
        return self.send(200, obj)

    def watch(self, gv, ns, plural, since):
        deadline = time.time() + 5
        with STORE.lock:
            while True:
                changed = [o for o in STORE.matching(gv, ns, plural)
                           if int(o["metadata"]["resourceVersion"]) > since]
                if changed or time.time() > deadline:
                    break
                STORE.lock.wait(0.2)
        lines = b"".join(json.dumps({"type": "MODIFIED", "object": o}).encode() + b"\n" for o in changed)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(lines)))
        self.end_headers()
        self.wfile.write(lines)

    def do_POST(self):
        path, _ = self.split()
        target = parse(path)
        obj = self.body()
        if target is None:
            return self.send(404, status(404, "NotFound", path))
        gv, ns, plural, _, _ = target
        name = obj.get("metadata", {}).get("name") or f"gen-{uuid.uuid4().hex[:6]}"
        obj.setdefault("metadata", {})["name"] = name
        if ns:
            obj["metadata"]["namespace"] = ns
        key = (gv, ns, plural, name)
        with STORE.lock:
            if key in STORE.objects:
                return self.send(409, status(409, "AlreadyExists", f"{plural} {name} exists"))
            if Handler.on_create:
                Handler.on_create(obj)
            return self.send(201, STORE.write(key, obj))

    def do_PUT(self):
        path, _ = self.split()
        target = parse(path)
        obj = self.body()
        gv, ns, plural, name, _ = target
        key = (gv, ns, plural, name)
        with STORE.lock:
            current = STORE.objects.get(key)
            if current is None:
                return self.send(404, status(404, "NotFound", name))
            wanted = obj.get("metadata", {}).get("resourceVersion")
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                return self.send(409, status(409, "Conflict", "the object has been modified"))
            obj["metadata"]["uid"] = current["metadata"]["uid"]
            return self.send(200, STORE.write(key, obj))

    def do_PATCH(self):
        path, _ = self.split()
        target = parse(path)
        patch = self.body()
        gv, ns, plural, name, sub = target
        key = (gv, ns, plural, name)
        apply = "apply-patch" in (self.headers.get("Content-Type") or "")
        with STORE.lock:
            current = STORE.objects.get(key)
            if current is None:
                if not apply or sub:
                    return self.send(404, status(404, "NotFound", name))
                current = {"metadata": {"name": name, **({"namespace": ns} if ns else {})}}
            updated = json.loads(json.dumps(current))
            if sub == "status":
                updated["status"] = merge(updated.get("status", {}), patch.get("status", {}))
            else:
                patch = {k: v for k, v in patch.items() if k != "status"}
                merge(updated, patch)
            return self.send(200, STORE.write(key, updated))

    def do_DELETE(self):
        path, _ = self.split()
        gv, ns, plural, name, _ = parse(path)
        with STORE.lock:
            STORE.objects.pop((gv, ns, plural, name), None)
        self.send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})


def start():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


if __name__ == "__main__":
    srv = start()
    print(srv.server_address[1], flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sys.exit(0)
