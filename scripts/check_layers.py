#!/usr/bin/env python3
"""Check that lucy's modules depend one way (README, "Architecture"):

    preprocess, model  <-  weights, explain  <-  classifier, fit  <-  train  <-  cli / web

Every `crate::` and `super::` path in src/ (outside `#[cfg(test)]` modules) is resolved to the
module it names. The check fails on an import that points up this order or sideways between
two modules of the same rank, and on a cycle between sibling files of one module (e.g.
weights::dir <-> weights::bundle). Run by ./scripts/test; prints what it checked.
"""

import re
import sys
from pathlib import Path

RANK = {"preprocess": 0, "model": 0, "weights": 1, "explain": 1, "classifier": 2, "fit": 2, "train": 3, "cli": 4, "web": 4}
SRC = Path(__file__).resolve().parent.parent / "src"


def module_path(file: Path) -> list[str]:
    parts = list(file.relative_to(SRC).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return parts


def code_of(file: Path) -> str:
    text = file.read_text()
    # Unit tests may reach anywhere; the layering is about the code they test.
    cut = re.search(r"#\[cfg\(test\)\]\s*mod \w+\s*\{", text)
    text = text[: cut.start()] if cut else text
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def expand(tree: str) -> list[str]:
    """`a::{b, c::{d, e}}` -> [`a::b`, `a::c::d`, `a::c::e`] (whitespace removed)."""
    tree = re.sub(r"\s+", "", tree)
    match = re.match(r"^(.*?)\{(.*)\}$", tree)
    if not match:
        return [tree]
    prefix, inner = match.groups()
    items, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        depth += (ch == "{") - (ch == "}")
        if ch == "," and depth == 0:
            items.append(inner[start:i])
            start = i + 1
    items.append(inner[start:])
    return [p for item in items if item for p in expand(prefix + item)]


def referenced(file: Path) -> list[list[str]]:
    """Absolute module paths (from the crate root) that `file` names."""
    code, here = code_of(file), module_path(file)
    parent = here if file.name == "mod.rs" or file.name == "lib.rs" else here[:-1]
    # `super` in a file is its module's parent; in `a/mod.rs` the module is `a`.
    paths = []
    for tree in re.findall(r"\buse\s+([^;]+);", code):
        paths += expand(tree)
    paths += re.findall(r"(?<![\w:])((?:crate|super)(?:::\w+)+)", code)
    resolved = []
    for p in paths:
        segments = p.split("::")
        if segments[0] == "crate":
            resolved.append(segments[1:])
        elif segments[0] == "super":
            base = parent[:-1] if file.name == "mod.rs" else parent
            while segments and segments[0] == "super":
                segments = segments[1:]
                if segments and segments[0] == "super":
                    base = base[:-1]
            resolved.append(base + segments)
    return [r for r in resolved if r]


def main() -> int:
    problems, edges, checked = [], {}, 0
    for file in sorted(SRC.rglob("*.rs")):
        here = module_path(file)
        if not here or here[0] not in RANK:
            continue  # lib.rs declares everything; bin/ is the CLI's entry point
        for target in referenced(file):
            checked += 1
            top = target[0]
            if top in RANK and top != here[0] and RANK[top] >= RANK[here[0]]:
                problems.append(f"{file.relative_to(SRC.parent)}: {here[0]} imports {'::'.join(target)} (rank {RANK[top]} >= {RANK[here[0]]})")
            # Sibling files of one module: record the edge for the cycle check.
            depth = len(here) - 1
            if depth >= 1 and target[:depth] == here[:depth] and len(target) > depth:
                sibling = target[depth]
                folder = SRC.joinpath(*here[:depth])
                if sibling != here[depth] and ((folder / f"{sibling}.rs").exists() or (folder / sibling).is_dir()):
                    edges.setdefault(tuple(here[: depth + 1]), set()).add(tuple(here[:depth] + [sibling]))
    # Cycles among siblings (depth-first search).
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                problems.append("cycle: " + " -> ".join("::".join(n) for n in cycle))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    print(f"layers: {checked} module references in src/ checked; order "
          "preprocess, model <- weights, explain <- classifier, fit <- train <- cli / web; "
          f"{sum(len(v) for v in edges.values())} edges between sibling files")
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
