"""docs/architecture.md against the package: every module is listed, and imports follow its layers."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pgy_pipeline

PACKAGE = Path(pgy_pipeline.__file__).parent
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"

# The layers as docs/architecture.md states them, top entry first: a module may import from its own layer
# and from the layers listed before it, never from a later one.
LAYERS: list[set[str]] = [
    {"errors", "model", "china_time", "config_values", "config", "pgy_pipeline"},
    {"api", "simulator", "alerts"},
    {"plan", "budget", "fetch", "tally", "warehouse", "verdict", "pipeline", "replay", "status", "report"},
    {"defs", "definitions"},
    {"cli", "demo", "deploy"},
]


def _modules() -> list[Path]:
    return sorted(p.relative_to(PACKAGE) for p in PACKAGE.rglob("*.py"))


def _part(module: str) -> str:
    """The top-level part of a dotted module name: pgy_pipeline.warehouse.load → warehouse."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _part_of(rel: Path) -> str:
    """The part a file belongs to: warehouse/load.py → warehouse, cli.py → cli, __init__.py → pgy_pipeline."""
    return "pgy_pipeline" if rel == Path("__init__.py") else rel.parts[0].removesuffix(".py")


def _layer(part: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def test_every_module_is_named_in_the_architecture_page() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8").split("\n## The tests")[0]  # the package's part of the page
    named = set(re.findall(r"`([\w/]+\.py)`", text))
    missing = []
    for rel in _modules():
        if rel.name == "__init__.py" and rel.parent != Path():
            if f"`{rel.parent.as_posix()}/`" not in text:  # a package is named by its folder
                missing.append(f"{rel.parent.as_posix()}/")
        elif rel.as_posix() not in named:
            missing.append(rel.as_posix())
    assert not missing, f"docs/architecture.md does not name: {missing}"
    stale = sorted(name for name in named if not (PACKAGE / name).exists())
    assert not stale, f"docs/architecture.md names modules that do not exist: {stale}"


def _imported(rel: Path) -> list[str]:
    """Every module name `rel` imports (lazy imports inside functions included)."""
    names: list[str] = []
    for node in ast.walk(ast.parse((PACKAGE / rel).read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return names


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {_part_of(rel) for rel in _modules()}
    unplaced = sorted(p for p in parts if not any(p in layer for layer in LAYERS))
    assert not unplaced, f"parts of pgy_pipeline/ with no layer in docs/architecture.md: {unplaced}"


def test_imports_never_point_to_a_later_layer() -> None:
    upward = []
    for rel in _modules():
        importer = _part_of(rel)
        upward += [
            f"{rel.as_posix()} imports {name}"
            for name in _imported(rel)
            if name.startswith("pgy_pipeline") and _layer(_part(name)) > _layer(importer)
        ]
    assert not upward, "imports pointing to a later layer:\n" + "\n".join(upward)


def test_only_the_dagster_layer_imports_dagster() -> None:
    below = [rel for rel in _modules() if _layer(_part_of(rel)) < _layer("defs")]
    importers = sorted(rel.as_posix() for rel in below if any(n.split(".")[0] == "dagster" for n in _imported(rel)))
    assert not importers, f"modules below the Dagster layer that import dagster: {importers}"
