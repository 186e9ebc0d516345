#!/usr/bin/env python3
"""Fails when sibling modules of a crate import each other in a circle.

For every `crate::…` and `super::…` path in a module's file (its unit tests left out), the
module depends on the sibling (under their common parent) that the path leads into. A cycle in
those sibling graphs is reported with the files that make it. rustc has no such check; this is
the "small script in CI" the layering rule asks for (`make lint`).
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRATES = ["storage", "cli", "lease", "testkit", "collector", "historyserver", "operator", "tests", "fuzz"]
PATH = re.compile(r"\b(crate|super)::((?:[A-Za-z_]\w*::)*)(\{[^}]*\}|[A-Za-z_]\w*)")
TESTS = re.compile(r"#\[cfg\(test\)\]\s*(pub\s+)?mod\s+\w+\s*\{", re.S)
COMMENT = re.compile(r"//.*$", re.M)


def modules(src):
    """Module path (tuple) -> file, for every `.rs` file under `src`."""
    found = {}
    for file in src.rglob("*.rs"):
        parts = list(file.relative_to(src).with_suffix("").parts)
        if parts[-1] in ("mod", "lib", "main"):
            parts = parts[:-1]
        found[tuple(parts)] = file
    return found


def targets(module, text):
    """Module paths a file's code refers to (unresolved names included)."""
    for kind, middle, last in PATH.findall(text):
        base = () if kind == "crate" else module[:-1]
        prefix = [p for p in middle.split("::") if p]
        lasts = [last]
        if last.startswith("{"):
            lasts = [item.strip().split("::")[0] for item in last[1:-1].split(",")]
        for name in lasts:
            if name and name not in ("self", "*"):
                yield base + tuple(prefix) + (name,)


def cycles(graph):
    """Every cycle found by depth-first search, once per starting edge."""
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def main():
    problems = []
    for crate in CRATES:
        src = ROOT / crate / "src"
        if not src.is_dir():
            continue
        known = modules(src)
        graph = {}
        for module, file in known.items():
            text = file.read_text()
            match = TESTS.search(text)
            if match:
                text = text[: match.start()]
            text = COMMENT.sub("", text)
            for target in targets(module, text):
                # Longest prefix of the path that is a module of this crate.
                while target and target not in known:
                    target = target[:-1]
                common = 0
                while common < min(len(module), len(target)) and module[common] == target[common]:
                    common += 1
                if common >= len(module) or common >= len(target):
                    continue  # a parent or a child, not a sibling
                a, b = module[: common + 1], target[: common + 1]
                graph.setdefault(a, set()).add(b)
        for cycle in cycles(graph):
            names = " -> ".join("::".join(m) for m in cycle)
            problems.append(f"{crate}: modules import each other in a circle: {names}")
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
