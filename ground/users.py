"""Who an instance runs as: `user` and `groups` of a scenario, resolved to numbers.

Instances see the host's /etc read-only, so a name means what the host's /etc/passwd and
/etc/group say, at every site. Names are resolved once, into numbers, before an instance is
created: its spec then travels with numbers, as its files' owners and a checkpoint's credentials
do. The rules are runc's and Docker's (`--user`):

- `NAME`: its uid and primary gid from /etc/passwd, plus every group of /etc/group that lists
  NAME as a member (Debian's `postgres` is in `ssl-cert`, which reads the snake-oil key);
- `UID`: the same, if /etc/passwd has an entry with that uid, else gid 0 and no groups;
- `NAME:GROUP`, `UID:GID` (a group by name or number): that user, that group, no others.
`groups` (names or gids) are added in any case.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

MAX_ID = 2**32 - 2  # (uid_t)-1 means "unchanged" to the kernel's set*id calls
MAX_GROUPS = 32
_NAME = r"[A-Za-z_][A-Za-z0-9_.-]{0,31}"
_ID = r"[0-9]{1,10}"
USER_PATTERN = rf"^({_NAME}|{_ID})(:({_NAME}|{_ID}))?$"
GROUP_PATTERN = rf"^({_NAME}|{_ID})$"
_USER = re.compile(USER_PATTERN)
_GROUP = re.compile(GROUP_PATTERN)
_DIGITS = re.compile("[0-9]+")


class UnknownAccount(LookupError):
    """A user or group name that the host's /etc/passwd or /etc/group does not hold."""


@dataclass(frozen=True)
class Identity:
    """An instance's process credentials: uid, primary gid, supplementary gids."""

    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()


ROOT = Identity()


def _number(text: str) -> int | None:
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    if value > MAX_ID:
        raise ValueError(f"{text}: user and group ids go up to {MAX_ID}")
    return value


def user_spec(value: str) -> str:
    """`value` if it is NAME, UID, NAME:GROUP or UID:GID (ids up to MAX_ID), else ValueError."""
    if not _USER.fullmatch(value):
        raise ValueError(
            f"{value[:40]!r} is not a user: expected a name, a uid, or user:group "
            "(e.g. postgres, 999, www-data:www-data, 33:33)"
        )
    for part in value.split(":"):
        _number(part)
    return value


def group_spec(value: str) -> str:
    """`value` if it is a group name or a gid, else ValueError."""
    if not _GROUP.fullmatch(value):
        raise ValueError(f"{value[:40]!r} is not a group: expected a name or a gid")
    _number(value)
    return value


@dataclass(frozen=True)
class PasswdEntry:
    """One line of /etc/passwd, as far as credentials go."""

    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class Accounts:
    """The users and groups of an /etc/passwd and an /etc/group (no NSS: instances read only
    the files)."""

    users: tuple[PasswdEntry, ...] = ()
    groups: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)

    @classmethod
    def parse(cls, passwd: str, group: str) -> Accounts:
        """From the text of an /etc/passwd and an /etc/group (malformed lines are skipped)."""
        users = []
        for line in passwd.splitlines():
            f = line.split(":")
            if len(f) >= 4 and _DIGITS.fullmatch(f[2]) and _DIGITS.fullmatch(f[3]):
                users.append(PasswdEntry(f[0], int(f[2]), int(f[3])))
        groups: dict[str, tuple[int, tuple[str, ...]]] = {}
        for line in group.splitlines():
            f = line.split(":")
            if len(f) >= 4 and _DIGITS.fullmatch(f[2]) and f[0] not in groups:
                members = tuple(m for m in f[3].split(",") if m)
                groups[f[0]] = (int(f[2]), members)
        return cls(tuple(users), groups)

    @classmethod
    def of_host(cls, etc: Path = Path("/etc")) -> Accounts:
        """This host's /etc/passwd and /etc/group (OSError if unreadable)."""
        return cls.parse((etc / "passwd").read_text(), (etc / "group").read_text())

    def user(self, name_or_uid: str) -> PasswdEntry | None:
        """The first entry with that name (or, for a number, that uid), as runc takes it."""
        uid = _number(name_or_uid)
        for u in self.users:
            if (u.uid == uid) if uid is not None else (u.name == name_or_uid):
                return u
        return None

    def gid(self, name_or_gid: str) -> int:
        """The gid of a group name, or the number itself; UnknownAccount for an unknown name."""
        gid = _number(name_or_gid)
        if gid is not None:
            return gid
        if name_or_gid not in self.groups:
            raise UnknownAccount(f"no group {name_or_gid!r} in /etc/group")
        return self.groups[name_or_gid][0]

    def member_of(self, name: str) -> list[int]:
        """The gids of the groups that list `name` as a member, in /etc/group's order."""
        return [gid for gid, members in self.groups.values() if name in members]

    def resolve(self, user: str | None, extra_groups: Sequence[str] = ()) -> Identity:
        """`user` (None: root, 0:0) and `extra_groups` as numbers, by the module's rules;
        ValueError for a malformed one, UnknownAccount for a name these files do not hold."""
        spec = user_spec(user) if user is not None else "0:0"
        name, _, group = spec.partition(":")
        entry = self.user(name)
        if entry is None and _number(name) is None:
            raise UnknownAccount(f"no user {name!r} in /etc/passwd")
        uid = entry.uid if entry is not None else int(name)
        if group:
            gid, groups = self.gid(group), []
        elif entry is not None:
            gid, groups = entry.gid, self.member_of(entry.name)
        else:
            gid, groups = 0, []
        groups += [self.gid(group_spec(g)) for g in extra_groups]
        unique = tuple(dict.fromkeys(g for g in groups if g != gid))
        if len(unique) > MAX_GROUPS:
            raise ValueError(f"{spec}: more than {MAX_GROUPS} supplementary groups")
        return Identity(uid, gid, unique)
