"""Linux capabilities an instance may hold: every name the kernel knows, and the default set.

The default is the set Podman grants a container (containers.conf `default_capabilities`), each
kept for what real servers do at start-up; an instance that needs more or fewer says so in the
scenario (`capabilities:`). A service process holds these as root; as another user it holds none
(the kernel clears them at execve, and `noNewPrivileges` keeps setuid and file capabilities from
giving them back), exactly as under Docker and Podman.
"""

from __future__ import annotations

# capability number -> name, as in linux/capability.h (0 ... CAP_LAST_CAP = 40 since Linux 5.9)
ALL_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

# Podman's default set, and why a service needs each
WHY_DEFAULT: dict[str, str] = {
    "CAP_CHOWN": "give files to the service's user (nginx chowns its temp dirs to www-data)",
    "CAP_DAC_OVERRIDE": "root reads and writes files whatever their mode, as on a host",
    "CAP_FOWNER": "chmod and utime files it does not own (init scripts fix their dirs' modes)",
    "CAP_FSETID": "keep setuid/setgid bits when it changes a file (package-style installs)",
    "CAP_KILL": "signal its own workers after they changed user (nginx master -> workers)",
    "CAP_NET_BIND_SERVICE": "listen below port 1024 (http 80, https 443, dns 53)",
    "CAP_SETFCAP": "set file capabilities on files it installs (only in its own dirs)",
    "CAP_SETGID": "drop to its own group and set supplementary groups (postgres, www-data)",
    "CAP_SETPCAP": "drop capabilities from its bounding set before it runs workers",
    "CAP_SETUID": "drop to its own user (nginx workers, PostgreSQL's `postgres`)",
    "CAP_SYS_CHROOT": "chroot into a directory of its own (sshd's privilege separation, bind9)",
}
DEFAULT_CAPABILITIES: tuple[str, ...] = tuple(c for c in ALL_CAPABILITIES if c in WHY_DEFAULT)

# Docker grants these too; Podman dropped them from its default (and so does mecmig)
WHY_NOT_DEFAULT: dict[str, str] = {
    "CAP_NET_RAW": "raw and packet sockets can forge any packet on the instance's link (ARP "
    "or IP spoofing of other hosts on the shared bridge); ping works without it via ICMP "
    "datagram sockets where net.ipv4.ping_group_range allows them",
    "CAP_MKNOD": "creating device nodes is useless in a container whose device cgroup allows "
    "none (the bundle denies every device), and dangerous where it allows any",
    "CAP_AUDIT_WRITE": "writes to the host's kernel audit log; only login-style programs "
    "(sshd, su, login with PAM) use it, and they work without it",
}

_KNOWN = frozenset(ALL_CAPABILITIES)


def capability(name: str) -> str:
    """`name` as the kernel spells it (`chown`, `CHOWN` and `CAP_CHOWN` give `CAP_CHOWN`);
    ValueError listing the known names if it is none of them."""
    upper = name.strip().upper()
    canonical = upper if upper.startswith("CAP_") else f"CAP_{upper}"
    if canonical not in _KNOWN:
        known = ", ".join(c.removeprefix("CAP_") for c in ALL_CAPABILITIES)
        raise ValueError(f"{name[:40]!r} is not a Linux capability (known: {known})")
    return canonical


def capabilities(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Each of `names` canonical, in the kernel's order, once each (ValueError as `capability`)."""
    wanted = {capability(n) for n in names}
    return tuple(c for c in ALL_CAPABILITIES if c in wanted)
