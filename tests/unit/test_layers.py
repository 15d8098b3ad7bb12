"""The architecture, enforced: packages import only downward (README, "Architecture"), the
migration engine's import closure holds no program starter and no HTTP client, and one module
starts programs. Read from the source (AST), so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# who may import whom (besides itself); the README's architecture table says the same
ALLOWED: dict[str, set[str]] = {
    "ground": set(),
    "workloads": set(),
    "topology": {"ground"},
    "controller": {"ground", "topology"},
    "migration": {"ground"},
    "agent": {"ground", "topology", "migration", "workloads"},
    "orchestration": {"ground", "topology", "controller", "migration", "agent", "workloads"},
    "mininet_scenarios": {
        "ground",
        "topology",
        "controller",
        "migration",
        "agent",
        "orchestration",
        "workloads",
    },
    "mecmig": {
        "ground",
        "topology",
        "controller",
        "migration",
        "agent",
        "orchestration",
        "mininet_scenarios",
        "workloads",
    },
}
OURS = set(ALLOWED)
# the pure engine: pure over the Site and ControllerLink protocols
ENGINE = "migration.engine"
NOT_IN_ENGINE = {"subprocess", "httpx", "requests", "http", "urllib", "socket", "os_ken", "fastapi"}
# starting a program: the stdlib's ways, and Mininet's (which hide the exit code)
RUNNER = "ground.runner"
STARTERS_MODULES = {"subprocess", "pty", "pexpect"}
STARTERS_OS = {"system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp"}
STARTERS_OS_PREFIXES = ("exec", "spawn")
STARTERS_METHODS = {"cmd", "cmdPrint", "popen", "pexec", "sendCmd", "waitOutput"}


def modules() -> Iterator[tuple[str, Path]]:
    for package in sorted(OURS):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            yield ".".join(parts), path


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in the file, at any depth."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:  # `from agent import transfer_wire` imports a module
                yield node.lineno, f"{node.module}.{alias.name}"


MODULES = dict(modules())


def test_every_package_is_in_a_layer() -> None:
    top = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()} - {"tests"}
    assert top == OURS, f"packages without a layer (add them to ALLOWED and the README): {top}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_only_downward(name: str) -> None:
    package = name.split(".")[0]
    wrong = [
        f"{MODULES[name].relative_to(ROOT)}:{line} imports {mod}"
        for line, mod in imports(MODULES[name])
        if (top := mod.split(".")[0]) in OURS and top != package and top not in ALLOWED[package]
    ]
    assert not wrong, f"{package} may import only {sorted(ALLOWED[package])}:\n" + "\n".join(wrong)


def closure(start: str) -> set[str]:
    """Our modules that importing `start` imports (packages' __init__ included)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in MODULES:
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        todo.extend(mod for _, mod in imports(MODULES[name]) if mod in MODULES)
    return seen


def test_engine_closure_is_pure() -> None:
    inside = closure(ENGINE)
    assert inside <= {n for n in MODULES if n.split(".")[0] in ("migration", "ground")}, inside
    wrong = [
        f"{name} imports {mod}"
        for name in sorted(inside)
        for _, mod in imports(MODULES[name])
        if mod.split(".")[0] in NOT_IN_ENGINE
    ]
    assert not wrong, "the engine's closure must not start programs or speak HTTP:\n" + "\n".join(
        wrong
    )
    # and what it does hold is small: the protocols, the rule, the timeline, the registry,
    # the frozen window's profile, the copy's compression choice
    assert len(inside) <= 14, sorted(inside)


def starts_programs(path: Path) -> list[str]:
    found: list[str] = []
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            found += [f"{node.lineno}: imports {n}" for n in names if n in STARTERS_MODULES]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr, owner = node.func.attr, node.func.value
            if (
                isinstance(owner, ast.Name)
                and owner.id == "os"
                and (attr in STARTERS_OS or attr.startswith(STARTERS_OS_PREFIXES))
            ):
                found.append(f"{node.lineno}: os.{attr}()")
            elif attr in STARTERS_METHODS and not (
                isinstance(owner, ast.Name) and owner.id in ("self", "re", "fnmatch")
            ):
                found.append(f"{node.lineno}: .{attr}() (Mininet: no exit code)")
    return found


# programs that run inside a service container as the service's own entry point, never in a
# mecmig process: what they start is the service's business
IN_CONTAINERS = {
    "workloads.pgserver": "makes the PostgreSQL cluster on first start, then becomes postgres",
}


def test_one_module_starts_programs() -> None:
    wrong = {
        name: hits
        for name, path in MODULES.items()
        if name != RUNNER and name not in IN_CONTAINERS and (hits := starts_programs(path))
    }
    assert not wrong, (
        "only ground.runner starts programs (Runner.run / SubprocessRunner.spawn, with "
        f"netns_pid= for a Mininet host): {wrong}"
    )
    assert starts_programs(MODULES[RUNNER]), "the runner itself is found by this test"


def test_this_test_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from orchestration.links import FacadeLink\n")
    assert ("orchestration.links" in {m for _, m in imports(bad)}) and starts_programs(bad) == []
    bad.write_text("import subprocess\nhost.cmd('ls')\n")
    assert len(starts_programs(bad)) == 2
