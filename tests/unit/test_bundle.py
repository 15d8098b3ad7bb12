"""runc's config.json for service containers: namespaces, mounts, the CRIU annotation, limits."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any

import pytest

from agent.bundle import (
    CRIU_CONFIG_ANNOTATION,
    DATA_DIR,
    HOST_DIRS_READ_ONLY,
    SCRATCH_DIRS,
    VOLUME_DIR,
    BundleSpec,
    config_json,
    rootfs_mountpoints,
)
from ground.instance_env import DEFAULT_PATH

SPEC = BundleSpec(
    name="counter",
    args=("/usr/bin/python3", "/data/memhog.py", "--port", "7000"),
    netns_path="/run/netns/mecmig-mec1-counter",
    data_dir="/var/lib/mecmig/sites/mec1/counter/xfer/data",
    criu_config_path="/var/lib/mecmig/sites/mec1/counter/criu.conf",
    cgroups_path="/mecmig/mec1/counter",
)


def mounts_by_destination(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    mounts = cfg["mounts"]
    by_dst = {m["destination"]: m for m in mounts}
    assert len(by_dst) == len(mounts), "a destination is mounted twice"
    return by_dst


def test_is_json_and_oci_shaped() -> None:
    cfg = config_json(SPEC)
    assert json.loads(json.dumps(cfg)) == cfg
    assert cfg["ociVersion"] == "1.0.2"
    assert cfg["root"] == {"path": "rootfs", "readonly": True}
    assert cfg["hostname"] == "counter"
    assert cfg["linux"]["cgroupsPath"] == "/mecmig/mec1/counter"


def test_process() -> None:
    proc = config_json(SPEC)["process"]
    assert proc["terminal"] is False
    assert proc["args"] == list(SPEC.args) and isinstance(proc["args"], list)
    assert proc["cwd"] == DATA_DIR
    assert proc["env"] == [DEFAULT_PATH]
    assert proc["user"] == {"uid": 0, "gid": 0}
    assert proc["noNewPrivileges"] is True


def test_default_capabilities_are_podmans_held_as_docker_holds_them() -> None:
    caps = config_json(SPEC)["process"]["capabilities"]
    podman = {
        "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE", "SETFCAP",
        "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    }  # fmt: skip
    assert {c.removeprefix("CAP_") for c in caps["bounding"]} == podman
    assert caps["bounding"] == caps["effective"] == caps["permitted"]
    assert caps["inheritable"] == [] and caps["ambient"] == []
    assert "CAP_NET_RAW" not in caps["bounding"] and "CAP_SYS_ADMIN" not in caps["bounding"]


def test_no_capabilities_is_an_empty_set_not_runcs_default() -> None:
    caps = config_json(replace(SPEC, capabilities=()))["process"]["capabilities"]
    assert caps == dict.fromkeys(
        ("bounding", "effective", "permitted", "inheritable", "ambient"), []
    )
    given = config_json(replace(SPEC, capabilities=("CAP_NET_BIND_SERVICE",)))["process"]
    assert given["capabilities"]["effective"] == ["CAP_NET_BIND_SERVICE"]
    assert given["noNewPrivileges"] is True


def test_user_groups_env_and_cwd() -> None:
    spec = replace(
        SPEC,
        uid=105,
        gid=111,
        groups=(110, 4),
        env=("PGDATA=/var/lib/postgresql/15/main", "LANG=C.UTF-8"),
        cwd="/var/lib/postgresql",
    )
    proc = config_json(spec)["process"]
    assert proc["user"] == {"uid": 105, "gid": 111, "additionalGids": [110, 4]}
    assert proc["env"] == [DEFAULT_PATH, "PGDATA=/var/lib/postgresql/15/main", "LANG=C.UTF-8"]
    assert proc["cwd"] == "/var/lib/postgresql"


def test_a_path_given_replaces_the_default() -> None:
    proc = config_json(replace(SPEC, env=("LANG=C", "PATH=/opt/bin")))["process"]
    assert proc["env"] == ["LANG=C", "PATH=/opt/bin"]


def test_state_dirs_are_writable_binds_of_the_instances_dirs() -> None:
    state = (
        ("/site/web/xfer/state/var/lib/nginx", "/var/lib/nginx"),
        ("/site/web/xfer/state/var/log/nginx", "/var/log/nginx"),
    )
    mounts = mounts_by_destination(config_json(replace(SPEC, state_mounts=state)))
    for src, dst in state:
        m = mounts[dst]
        assert (m["type"], m["source"]) == ("bind", src)
        assert "rw" in m["options"] and "ro" not in m["options"]
        assert {"nosuid", "nodev"} <= set(m["options"])


def test_network_namespace_is_the_given_netns_path() -> None:
    namespaces = config_json(SPEC)["linux"]["namespaces"]
    (net,) = [ns for ns in namespaces if ns["type"] == "network"]
    assert net == {"type": "network", "path": SPEC.netns_path}


def test_own_pid_mount_ipc_uts_namespaces() -> None:
    namespaces = config_json(SPEC)["linux"]["namespaces"]
    types = [ns["type"] for ns in namespaces]
    assert sorted(types) == sorted(["pid", "network", "ipc", "uts", "mount"])
    # only the network namespace is joined; the others are new ones
    assert all("path" not in ns for ns in namespaces if ns["type"] != "network")


def test_host_dirs_are_read_only_binds() -> None:
    mounts = mounts_by_destination(config_json(SPEC))
    for d in HOST_DIRS_READ_ONLY:
        m = mounts[d]
        assert (m["type"], m["source"]) == ("bind", d)
        assert "rbind" in m["options"] and "ro" in m["options"] and "rw" not in m["options"]
    assert set(HOST_DIRS_READ_ONLY) >= {"/usr", "/lib", "/bin", "/sbin", "/etc"}


def test_data_is_a_writable_bind_of_data_dir() -> None:
    m = mounts_by_destination(config_json(SPEC))[DATA_DIR]
    assert DATA_DIR == "/data"
    assert (m["type"], m["source"]) == ("bind", SPEC.data_dir)
    assert "rw" in m["options"] and "ro" not in m["options"]


@pytest.mark.parametrize("d", ["/tmp", "/run"])
def test_scratch_dirs_are_tmpfs(d: str) -> None:
    assert d in SCRATCH_DIRS
    m = mounts_by_destination(config_json(SPEC))[d]
    assert (m["type"], m["source"]) == ("tmpfs", "tmpfs")


def test_kernel_filesystems() -> None:
    mounts = mounts_by_destination(config_json(SPEC))
    assert mounts["/proc"]["type"] == "proc"
    assert mounts["/sys"]["type"] == "sysfs" and "ro" in mounts["/sys"]["options"]
    assert mounts["/dev"]["type"] == "tmpfs"
    assert mounts["/dev/pts"]["type"] == "devpts"


def test_volume_only_when_given() -> None:
    assert VOLUME_DIR not in mounts_by_destination(config_json(SPEC))
    cfg = config_json(replace(SPEC, volume_dir="/srv/vol"))
    m = mounts_by_destination(cfg)[VOLUME_DIR]
    assert (m["type"], m["source"]) == ("bind", "/srv/vol")
    assert "rw" in m["options"]


def test_extra_mounts_appended_last() -> None:
    extra = {"destination": "/opt/x", "type": "bind", "source": "/x", "options": ["rbind", "ro"]}
    cfg = config_json(replace(SPEC, extra_mounts=(extra,)))
    assert cfg["mounts"][-1] == extra


def test_criu_annotation_names_the_criu_config() -> None:
    cfg = config_json(SPEC)
    assert cfg["annotations"] == {CRIU_CONFIG_ANNOTATION: SPEC.criu_config_path}
    assert CRIU_CONFIG_ANNOTATION == "org.criu.config"


def test_memory_limit_only_when_given() -> None:
    resources = config_json(SPEC)["linux"]["resources"]
    assert "memory" not in resources
    assert resources["devices"] == [{"allow": False, "access": "rwm"}]
    limited = config_json(replace(SPEC, memory_limit_bytes=64 * 2**20))["linux"]["resources"]
    assert limited["memory"] == {"limit": 64 * 2**20}


def test_rootfs_mountpoints_cover_every_mount_destination() -> None:
    state = ("/var/lib/postgresql", "/var/run/postgresql")
    points = rootfs_mountpoints(state)
    mounts = tuple((f"/site/x/xfer/state{p}", p) for p in state)
    cfg = config_json(replace(SPEC, volume_dir="/srv/vol", state_mounts=mounts))
    tmpfs = {m["destination"] for m in cfg["mounts"] if m["type"] == "tmpfs"}
    for m in cfg["mounts"]:
        dst = PurePosixPath(m["destination"])
        # either a directory of the rootfs, or inside a (writable) tmpfs mounted at one
        inside_tmpfs = any(p in tmpfs and dst.is_relative_to(p) for p in map(str, dst.parents))
        assert str(dst) in points or inside_tmpfs, dst
    assert all(p.startswith("/") for p in points)
    assert len(set(points)) == len(points)


def test_a_workdir_no_mount_holds_gets_a_directory_in_the_rootfs() -> None:
    assert "/srv/app" in rootfs_mountpoints(workdir="/srv/app")
    for covered in ("/data", "/data/sub", "/usr/share/nginx", "/tmp", "/var/lib/pg", "/"):
        assert rootfs_mountpoints(("/var/lib/pg",), covered) == rootfs_mountpoints(("/var/lib/pg",))
