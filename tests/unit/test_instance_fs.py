"""Which directories may be an instance's state, its working directory, and its environment."""

from __future__ import annotations

import pytest

from ground.instance_env import DEFAULT_PATH, MAX_ENV, env_items, process_env
from ground.instance_fs import MAX_STATE_DIRS, state_dir, state_dirs, workdir


@pytest.mark.parametrize(
    "path",
    [
        "/var/lib/postgresql",
        "/var/log/nginx",
        "/var/run/postgresql",  # not /run's tmpfs: /var is the instance's own root here
        "/var",
        "/srv/app",
        "/opt/x",
        "/home/me",
        "/root",
        "/mnt/db@1+x",
        "/datastore",  # not /data
        "/usrlocal",  # not /usr
    ],
)
def test_a_state_dir(path: str) -> None:
    assert state_dir(path) == path


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/", "name the directories that change"),
        ("/usr/local/share", "/usr is the host's, mounted read-only"),
        ("/etc/nginx/conf.d", "/etc is the host's"),
        ("/etc", "/etc is the host's"),
        ("/lib64/x", "/lib64 is the host's"),
        ("/tmp/x", "/tmp is tmpfs scratch"),
        ("/run/postgresql", "declare e.g. /var/run/<name> instead"),
        ("/proc/x", "/proc is the kernel's"),
        ("/dev/shm", "/dev is the kernel's"),
        ("/sys", "/sys is the kernel's"),
        ("/data/db", "/data is the instance's own and writable already"),
        ("/volume", "/volume is the instance's own"),
        ("var/lib/x", "absolute path of plain names"),
        ("/var/lib/", "trailing '/'"),
        ("/var//lib", "without '//'"),
        ("/var/../etc", "must not hold '.' or '..'"),
        ("/var/./lib", "must not hold '.' or '..'"),
        ("/var/lib/my db", "plain names"),
        ("/var/a,b", "plain names"),
        ("/var/a:b", "plain names"),
        ("/var/x\n", "plain names"),  # a pattern's `$` would let a final newline through
        ("/var/" + "x" * 1100, "at most 1024 characters"),
    ],
)
def test_not_a_state_dir(path: str, why: str) -> None:
    with pytest.raises(ValueError, match="state directory") as info:
        state_dir(path)
    assert why in str(info.value)


def test_state_dirs_none_inside_another_none_twice_and_bounded() -> None:
    assert state_dirs(["/var/lib/nginx", "/var/log/nginx"]) == ("/var/lib/nginx", "/var/log/nginx")
    assert state_dirs(["/var/lib", "/var/library"]) == ("/var/lib", "/var/library")
    with pytest.raises(ValueError, match="'/var/lib/pg/15' is inside '/var/lib/pg'"):
        state_dirs(["/var/lib/pg/15", "/var/lib/pg"])
    with pytest.raises(ValueError, match="given twice"):
        state_dirs(["/var/x", "/var/x"])
    with pytest.raises(ValueError, match=f"at most {MAX_STATE_DIRS}"):
        state_dirs([f"/srv/{i}" for i in range(MAX_STATE_DIRS + 1)])


def test_workdir() -> None:
    for ok in ("/", "/data", "/usr/share/nginx", "/var/lib/postgresql"):
        assert workdir(ok) == ok
    for bad in ("data", "/data/", "/a/../b", "/a b", ""):
        with pytest.raises(ValueError, match="working directory"):
            workdir(bad)


def test_env_items_in_order_numbers_as_text() -> None:
    assert env_items({"PGDATA": "/var/lib/x", "PGPORT": 5432, "R": 0.5, "E": ""}) == (
        "PGDATA=/var/lib/x",
        "PGPORT=5432",
        "R=0.5",
        "E=",
    )


@pytest.mark.parametrize(
    ("variables", "why"),
    [
        ({"1A": "x"}, "not a variable name"),
        ({"A-B": "x"}, "not a variable name"),
        ({"A\n": "x"}, "not a variable name"),
        ({"A=B": "x"}, "not a variable name"),
        ({"": "x"}, "not a variable name"),
        ({"X" * 129: "x"}, "not a variable name"),
        ({"A": True}, "a string or a number"),
        ({"A": None}, "a string or a number"),
        ({"A": ["x"]}, "a string or a number"),
        ({"A": "a\0b"}, "no NUL"),
        ({"A": "x" * 1025}, "at most 1024 characters"),
        ({f"V{i}": "x" for i in range(MAX_ENV + 1)}, f"at most {MAX_ENV} variables"),
    ],
)
def test_bad_env(variables: dict[str, object], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        env_items(variables)


def test_process_env_over_the_default_path() -> None:
    assert process_env(()) == (DEFAULT_PATH,)
    assert process_env(("LANG=C",)) == (DEFAULT_PATH, "LANG=C")
    assert process_env(("PATH=/opt/bin", "LANG=C")) == ("PATH=/opt/bin", "LANG=C")
    assert process_env(("XPATH=1",)) == (DEFAULT_PATH, "XPATH=1")
