"""User and group names resolved to numbers as runc and Docker do (`--user`), from the text of
an /etc/passwd and an /etc/group."""

from __future__ import annotations

from pathlib import Path

import pytest

from ground.users import MAX_ID, ROOT, Accounts, Identity, UnknownAccount, group_spec, user_spec

PASSWD = """\
root:x:0:0:root:/root:/bin/bash
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
postgres:x:105:111:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash
broken line
memcache:x:106:112::/nonexistent:/usr/sbin/nologin
"""
GROUP = """\
root:x:0:
adm:x:4:syslog
www-data:x:33:
ssl-cert:x:110:postgres
postgres:x:111:
memcache:x:112:
tape:x:26:postgres,www-data
"""
ACCOUNTS = Accounts.parse(PASSWD, GROUP)


@pytest.mark.parametrize(
    ("user", "groups", "identity"),
    [
        (None, (), ROOT),
        ("root", (), ROOT),
        ("0", (), ROOT),
        # a name: its primary group and every group that lists it, in /etc/group's order
        ("postgres", (), Identity(105, 111, (110, 26))),
        ("www-data", (), Identity(33, 33, (26,))),
        # a uid /etc/passwd has: the same as its name
        ("105", (), Identity(105, 111, (110, 26))),
        # a uid it has not: group 0, no others
        ("1234", (), Identity(1234, 0, ())),
        # an explicit group: that one and no others
        ("postgres:postgres", (), Identity(105, 111, ())),
        ("postgres:4", (), Identity(105, 4, ())),
        ("33:33", (), Identity(33, 33, ())),
        ("1234:5678", (), Identity(1234, 5678, ())),
        # extra groups, by name or number, once each, never the primary one
        ("memcache", ("adm", "4", "500", "memcache"), Identity(106, 112, (4, 500))),
        (None, ("ssl-cert",), Identity(0, 0, (110,))),
    ],
)
def test_resolve(user: str | None, groups: tuple[str, ...], identity: Identity) -> None:
    assert ACCOUNTS.resolve(user, groups) == identity


@pytest.mark.parametrize(
    ("user", "groups", "message"),
    [
        ("nginx", (), "no user 'nginx' in /etc/passwd"),
        ("postgres:nogroup", (), "no group 'nogroup' in /etc/group"),
        ("root", ("wheel",), "no group 'wheel' in /etc/group"),
    ],
)
def test_an_unknown_name_says_which(user: str, groups: tuple[str, ...], message: str) -> None:
    with pytest.raises(UnknownAccount, match=message):
        ACCOUNTS.resolve(user, groups)


@pytest.mark.parametrize("value", ["postgres", "www-data", "_apt", "33", "33:33", "a:b", "x.y"])
def test_user_syntax(value: str) -> None:
    assert user_spec(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "root\n",
        "\u00b2",
        "a b",
        "1a",
        "-x",
        "a:b:c",
        ":33",
        "33:",
        "a;b",
        "x" * 33,
        str(MAX_ID + 1),
        "0:99999999999",
    ],
)
def test_bad_user_syntax(value: str) -> None:
    with pytest.raises(ValueError):
        user_spec(value)


def test_group_syntax() -> None:
    assert group_spec("ssl-cert") == "ssl-cert" and group_spec("110") == "110"
    for bad in ("a:b", "", "a b", str(MAX_ID + 1)):
        with pytest.raises(ValueError):
            group_spec(bad)


def test_too_many_groups() -> None:
    with pytest.raises(ValueError, match="more than 32 supplementary groups"):
        ACCOUNTS.resolve("root", tuple(str(g) for g in range(1, 40)))


def test_the_hosts_files(tmp_path: Path) -> None:
    (tmp_path / "passwd").write_text(PASSWD)
    (tmp_path / "group").write_text(GROUP)
    assert Accounts.of_host(tmp_path).resolve("postgres") == Identity(105, 111, (110, 26))
    assert Accounts.of_host().resolve("root") == ROOT  # this machine's
