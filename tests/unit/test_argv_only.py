"""Commands are argument lists, never shell text (issue 10, "input that is never trusted").

A name from a request (an instance, a site, an address) reaches runc, ip, nft and ovs-vsctl as
one argument of a list: it can be a wrong name, never a second command. This test reads the
source tree (AST) and fails on anything that hands a command line to a shell: `shell=True`,
`os.system`, `os.popen`, a shell-running asyncio call, a `subprocess.*` call or a call of
`ground.runner`'s runner (`.run`/`.spawn` on a runner or spawner) whose command is a string
(a literal, an f-string, a concatenation, `%` or `.format`, a `.join`). The runner refuses a
string at run time too (`ground.runner.argv_list`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ground.runner import SubprocessRunner, argv_list

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [p.parent for p in sorted(ROOT.glob("*/__init__.py"))]  # ours, and tests/
SHELL_CALLS = {("os", "system"), ("os", "popen"), ("asyncio", "create_subprocess_shell")}
SHELL_METHODS = {"subprocess_shell", "create_subprocess_shell"}
RUNNER_OWNERS = ("runner", "spawner")  # runner.run(...), self._runner.spawn(...), ...


def sources() -> list[Path]:
    return [p for pkg in PACKAGES for p in sorted(pkg.rglob("*.py"))]


def _is_text(node: ast.expr | None) -> bool:
    """Whether `node` surely makes a string: what a command given as shell text looks like."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str | bytes)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return _is_text(node.left) or _is_text(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return (
            node.func.attr in ("format", "join")
            and _is_text(node.func.value)
            or (
                node.func.attr == "join"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "shlex"
            )
        )
    return False


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return f"{_dotted(node.func)}()"
    return ""


def _command(call: ast.Call, keyword: str) -> ast.expr | None:
    if call.args:
        return call.args[0]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def shell_uses(tree: ast.AST) -> list[str]:
    """Every place in `tree` that gives a shell a command, with its line."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("os", "asyncio"):
            found += [
                f"{node.lineno}: from {node.module} import {a.name}"
                for a in node.names
                if (node.module, a.name) in SHELL_CALLS
            ]
        if not isinstance(node, ast.Call):
            continue
        where = f"{node.lineno}: {_dotted(node.func)}()"
        for k in node.keywords:
            if k.arg == "shell" and not (isinstance(k.value, ast.Constant) and not k.value.value):
                found.append(f"{where} with shell={ast.unparse(k.value)}")
        if not isinstance(node.func, ast.Attribute):
            continue
        owner, attr = _dotted(node.func.value), node.func.attr
        if (owner, attr) in SHELL_CALLS or attr in SHELL_METHODS:
            found.append(f"{where} runs a shell")
        elif owner == "subprocess" and _is_text(_command(node, "args")):
            found.append(f"{where} with a string command")
        elif (
            attr in ("run", "spawn")
            and any(word in owner.split(".")[-1].lower() for word in RUNNER_OWNERS)
            and _is_text(_command(node, "argv"))
        ):
            found.append(f"{where} with a string command (the runner takes a list)")
    return found


def test_every_command_is_an_argument_list() -> None:
    files = sources()
    assert len(files) > 150 and ROOT / "ground" / "runner.py" in files
    wrong = {
        str(path.relative_to(ROOT)): hits
        for path in files
        if (hits := shell_uses(ast.parse(path.read_text(), str(path))))
    }
    assert not wrong, f"commands must be argument lists, never shell text: {wrong}"


@pytest.mark.parametrize(
    "code",
    [
        "subprocess.run(['ls', '-l'], shell=True)",
        "subprocess.run(['ls'], shell=flag)",
        "subprocess.check_output(f'ip link show {name}')",
        "subprocess.Popen(args='runc ' + name)",
        "os.system('rm -rf ' + path)",
        "os.popen('id')",
        "from os import system",
        "asyncio.create_subprocess_shell(cmd)",
        "self.runner.run(f'runc delete {name}')",
        "runner.run('ip netns add %s' % name, check=False)",
        "self._spawner.spawn(' '.join(argv), log)",
        "spawner.spawn(argv=shlex.join(argv), log_path=log)",
        "SubprocessRunner().run('ls')",
    ],
)
def test_this_test_sees_a_shell(code: str) -> None:
    assert len(shell_uses(ast.parse(code))) == 1, code


@pytest.mark.parametrize(
    "code",
    [
        "subprocess.run(['ls', '-l'], check=False)",
        "subprocess.run(argv, shell=False)",
        "self.runner.run(['runc', 'delete', name])",
        "self.runner.run(self._argv(container, 'state'), check=False)",
        "spawner.spawn(argv, str(log))",
        "result.stdout.split()",
        "emu.run('ping')",  # not a runner: Mininet's own, banned elsewhere (test_layers)
    ],
)
def test_this_test_lets_argument_lists_pass(code: str) -> None:
    assert shell_uses(ast.parse(code)) == [], code


@pytest.mark.parametrize("bad", ["ls -l", b"ls", "", ["ls", 1], []])
def test_the_runner_refuses_a_command_that_is_no_argument_list(bad: object) -> None:
    runner = SubprocessRunner()
    with pytest.raises(TypeError, match="command"):
        runner.run(bad, check=False)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="command"):
        runner.spawn(bad, "/dev/null")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="command"):
        argv_list(bad)  # type: ignore[arg-type]


def test_the_runner_takes_a_list_or_a_tuple() -> None:
    assert argv_list(("true", "x")) == ["true", "x"]
    assert SubprocessRunner().run(["true"]).ok
