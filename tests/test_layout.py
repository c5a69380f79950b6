"""The shape of the code, as a newcomer and an operator meet it: imports point one way
(workers -> broadcaster -> messages) with no cycle, and the command line loads only what a
command runs."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"messages": 0, "broadcaster": 1, "workers": 2, "bench": 3}
HEAVY = {"fastapi", "uvicorn", "starlette", "celery", "kombu", "bench"}


def _modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports_at_load(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project's modules ``path`` imports when it is loaded (not inside functions, not
    for type checking only), with the packages they belong to."""

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    found: set[str] = set()
    body = ast.parse(path.read_text(encoding="utf-8")).body
    for node in body:
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                target = owner(f"{node.module}.{alias.name}")
                if target:
                    found.add(target)
        elif isinstance(node, ast.Import):
            found.update(t for a in node.names if (t := owner(a.name)))
    # Importing a module runs its packages' __init__ first: they are imported too (but for
    # the importer's own packages, which Python has started before the importer itself).
    own = path.relative_to(ROOT).with_suffix("").parts
    ancestors = {".".join(own[:i]) for i in range(1, len(own))}
    for target in list(found):
        parts = target.split(".")
        found.update(
            p
            for i in range(1, len(parts))
            if (p := ".".join(parts[:i])) in modules and p not in ancestors
        )
    return found


def _in_cycles(graph: dict[str, set[str]]) -> list[str]:
    """The nodes of ``graph`` that reach themselves."""
    found = []
    for start, targets in graph.items():
        seen: set[str] = set()
        todo = list(targets)
        while todo:
            name = todo.pop()
            if name == start:
                found.append(start)
                break
            if name not in seen:
                seen.add(name)
                todo.extend(graph.get(name, ()))
    return sorted(found)


def test_imports_point_one_way_and_never_in_a_cycle() -> None:
    modules = _modules()
    graph = {name: _imports_at_load(path, modules) - {name} for name, path in modules.items()}
    upward = [
        (name, target)
        for name, targets in graph.items()
        for target in targets
        if LAYERS[target.split(".")[0]] > LAYERS[name.split(".")[0]]
    ]
    assert upward == []
    assert _in_cycles(graph) == []


def _heavy(loaded: set[str]) -> list[str]:
    return sorted(m for m in loaded if m.split(".")[0] in HEAVY or m.startswith("broadcaster.web"))


def _domain(module: str) -> str:
    """The part of the project a module belongs to: a subpackage of ``broadcaster`` (its
    domains, web, cli), its table registry, or a top-level package (``broadcaster`` for
    the service's core: config, db, orm, phones...)."""
    parts = module.split(".")
    domain = len(parts) > 1 and ((ROOT / "broadcaster" / parts[1]).is_dir() or parts[1] == "models")
    if parts[0] == "broadcaster" and domain:
        return ".".join(parts[:2])
    return parts[0]


def test_the_domains_depend_on_each_other_one_way() -> None:
    # broadcaster.models is the registry of every table: it imports each domain's models,
    # and every domain reads the tables through it, so it is left out.
    modules = _modules()
    edges = {
        (_domain(name), _domain(target))
        for name, path in modules.items()
        for target in _imports_at_load(path, modules)
        if "broadcaster.models" not in (_domain(name), _domain(target))
    }
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        if a != b:
            graph.setdefault(a, set()).add(b)
    assert _in_cycles(graph) == []


def _loaded_by(tmp_path: Path, *args: str) -> set[str]:
    env = {**os.environ, "RISKCAST_DATABASE_URL": f"sqlite:///{tmp_path}/riskcast.db"}
    env.pop("RISKCAST_BROKER_URL", None)
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert names, result.stderr[-2000:]
    return names


@pytest.mark.parametrize(
    "args",
    [("--help",), ("campaigns", "--help"), ("campaigns", "status", "1"), ("queue",)],
    ids=["help", "campaigns-help", "campaigns-status", "queue"],
)
def test_a_command_loads_neither_the_web_stack_nor_celery_nor_the_benchmark(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    assert _heavy(_loaded_by(tmp_path, "-m", "workers.cli", *args)) == []


SERVICE = {"sqlalchemy", "alembic"}


def _service(loaded: set[str]) -> list[str]:
    """The database libraries and the campaign services among ``loaded``."""
    return sorted(
        m
        for m in loaded
        if m.split(".")[0] in SERVICE
        or m == "broadcaster.campaigns"
        or m.startswith("broadcaster.campaigns.")
    )


@pytest.mark.parametrize(
    "args", [("--help",), ("campaigns", "--help")], ids=["help", "campaigns-help"]
)
def test_help_loads_neither_the_database_nor_the_service_layer(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    assert _service(_loaded_by(tmp_path, "-m", "workers.cli", *args)) == []


def test_the_checks_see_what_they_look_for_where_it_is_loaded(tmp_path: Path) -> None:
    loaded = _loaded_by(
        tmp_path, "-c", "import broadcaster.web.app, workers.app, broadcaster.schema"
    )
    assert {"fastapi", "celery", "broadcaster.web.app"} <= set(_heavy(loaded))
    assert {"sqlalchemy", "alembic", "broadcaster.campaigns.service"} <= set(_service(loaded))
