"""Drives the real Helm v4 library (helm-sdkpy) against a real API server.

usage: helm.py KUBECONFIG NAMESPACE RELEASE install|upgrade|uninstall [CHART [VALUES_FILE]]
install and upgrade wait for every object to be ready (kwok makes pods Ready) and validate
the manifests against the server's OpenAPI schema. Prints the action's result as JSON.
"""

import asyncio
import json
import os
import sys
import tempfile

import helm_sdkpy
import yaml


async def main():
    kubeconfig, namespace, release, action = sys.argv[1:5]
    chart = sys.argv[5] if len(sys.argv) > 5 else None
    values = None
    if len(sys.argv) > 6:
        with open(sys.argv[6]) as f:
            values = yaml.safe_load(f)
    with tempfile.TemporaryDirectory() as tmp:
        for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
            os.environ[var] = os.path.join(tmp, var.lower())
        config = helm_sdkpy.Configuration(namespace=namespace, kubeconfig=kubeconfig)
        if action == "install":
            result = await helm_sdkpy.Install(config).run(
                release, chart, values=values, create_namespace=True, wait=True, timeout=180,
                disable_openapi_validation=False)
        elif action == "upgrade":
            result = await helm_sdkpy.Upgrade(config).run(
                release, chart, values=values, wait=True, timeout=180,
                disable_openapi_validation=False)
        elif action == "uninstall":
            result = await helm_sdkpy.Uninstall(config).run(release, wait=True, timeout=180)
        else:
            raise SystemExit(f"unknown action {action}")
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    asyncio.run(main())
