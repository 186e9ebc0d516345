"""Lints and renders the Helm chart with helm-sdkpy (the real Helm library).

helm-sdkpy has no offline "template" action, so the chart is installed against the in-memory
fake API server (fake_apiserver.py), and the objects Helm creates are the rendered manifests.

usage: helm_render.py CHART OUT_DIR [VALUES_FILE]
Prints a JSON summary: {"lint": {...}, "objects": N}.
"""

import asyncio
import json
import os
import sys
import tempfile

import helm_sdkpy
import yaml

import fake_apiserver

created = []


def on_create(obj):
    if obj.get("kind") == "CustomResourceDefinition":
        # Helm waits for CRDs to be established.
        obj["status"] = {"conditions": [{"type": "Established", "status": "True"},
                                        {"type": "NamesAccepted", "status": "True"}],
                         "acceptedNames": obj["spec"]["names"]}
    if obj.get("metadata", {}).get("labels", {}).get("owner") != "helm":
        created.append(json.loads(json.dumps(obj)))


def opaque_body(handler):
    # Helm's release record is sent as protobuf; it is not a chart object.
    name = handler.split()[0].rsplit("/", 1)[-1]
    return {"kind": "Secret", "apiVersion": "v1",
            "metadata": {"name": f"sh.helm.release.{name}", "labels": {"owner": "helm"}}}


async def main():
    chart, out_dir = sys.argv[1], sys.argv[2]
    values = None
    if len(sys.argv) > 3:
        with open(sys.argv[3]) as f:
            values = yaml.safe_load(f)
    fake_apiserver.Handler.on_create = staticmethod(on_create)
    fake_apiserver.Handler.opaque_body = staticmethod(opaque_body)
    server = fake_apiserver.start()
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = os.path.join(tmp, "kubeconfig")
        with open(kubeconfig, "w") as f:
            json.dump({
                "apiVersion": "v1", "kind": "Config", "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.server_address[1]}"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "ray-history"}}],
                "users": [{"name": "fake", "user": {"token": "fake"}}],
            }, f)
        for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
            os.environ[var] = os.path.join(tmp, var.lower())
        config = helm_sdkpy.Configuration(namespace="ray-history", kubeconfig=kubeconfig)
        lint = await helm_sdkpy.Lint(config).run(chart)
        await helm_sdkpy.Install(config).run("ray-history", chart, values=values, wait=False, timeout=60)
    os.makedirs(out_dir, exist_ok=True)
    for i, obj in enumerate(created):
        name = f"{i:03d}-{obj.get('kind', 'Unknown')}-{obj['metadata'].get('name', '')}.json"
        for key in ("uid", "resourceVersion", "creationTimestamp", "generation"):
            obj["metadata"].pop(key, None)
        with open(os.path.join(out_dir, name), "w") as f:
            json.dump(obj, f, indent=1)
    print(json.dumps({"lint": lint, "objects": len(created)}))
    server.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
