"""Validates custom resources against the openAPIV3Schema of their CRD, strictly: unknown
fields are errors (as with the API server's fieldValidation=Strict), types, enums, required
fields, patterns and bounds are checked. CEL rules are not evaluated here.

usage: crd_validate.py CRD_FILE RESOURCE_FILE...   (YAML or JSON, multi-document)
Prints one JSON line per resource; exits 1 if any failed or names an unknown kind.
"""

import copy
import json
import sys

import jsonschema
import yaml


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def strict(schema):
    schema = copy.deepcopy(schema)

    def walk(node):
        if not isinstance(node, dict):
            return
        if node.pop("x-kubernetes-int-or-string", False):
            node.pop("type", None)
            node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        if node.pop("nullable", False) and "type" in node:
            node["type"] = [node["type"], "null"]
        preserve = node.pop("x-kubernetes-preserve-unknown-fields", False)
        if "properties" in node and "additionalProperties" not in node and not preserve:
            node["additionalProperties"] = False
        for key in list(node):
            if key.startswith("x-kubernetes-"):
                node.pop(key)
        for value in node.values():
            if isinstance(value, dict):
                walk(value)
            elif isinstance(value, list):
                for item in value:
                    walk(item)

    walk(schema)
    # apiVersion, kind and metadata are checked by the API server itself.
    for key in ("apiVersion", "kind", "metadata"):
        schema.setdefault("properties", {}).setdefault(key, {})
    return schema


def main():
    crds = load_all(sys.argv[1])
    schemas = {}
    for crd in crds:
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schemas[(f"{group}/{version['name']}", kind)] = strict(version["schema"]["openAPIV3Schema"])
    failed = False
    for path in sys.argv[2:]:
        for doc in load_all(path):
            key = (doc.get("apiVersion"), doc.get("kind"))
            name = doc.get("metadata", {}).get("name")
            schema = schemas.get(key)
            if schema is None:
                print(json.dumps({"file": path, "kind": key[1], "name": name, "ok": False, "errors": ["no CRD for this kind"]}))
                failed = True
                continue
            validator = jsonschema.Draft7Validator(schema)
            errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
            failed |= bool(errors)
            print(json.dumps({"file": path, "kind": key[1], "name": name, "ok": not errors, "errors": errors}))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
