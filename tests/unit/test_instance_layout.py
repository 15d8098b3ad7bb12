"""An instance's directories at a site, over a faked runc (agent_fakes): its state directories
under xfer/ (so they travel like /data), owned by its user when made; their mount points and its
working directory in the rootfs, passable by any user whatever the umask; the bundle that mounts
them; a destination that builds the same; a bad path refused before anything is made."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.container import ContainerError
from agent.instance_dirs import LayoutError, make_own_dir, state_host_dir
from agent.service import SiteService
from migration.site import InstanceSpec
from tests.unit.agent_fakes import SiteRunner, fake_site, tree
from tests.unit.migration_fakes import make_spec

AS_ROOT = os.geteuid() == 0
PG = make_spec(
    "pg",
    uid=105,
    gid=111,
    groups=(110,),
    capabilities=("CAP_SETUID", "CAP_SETGID"),
    state=("/var/lib/postgresql", "/var/run/postgresql", "/var/log/postgresql"),
    env=("PGDATA=/var/lib/postgresql/15/main",),
    workdir="/srv/pg",
    volume=True,
)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[SiteService, SiteRunner]]:
    umask = os.umask(0o077)  # an agent started with a strict umask still makes passable dirs
    try:
        yield fake_site(tmp_path)
    finally:
        os.umask(umask)


def _config(service: SiteService, name: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(
        (service.containers.dir(name) / "bundle" / "config.json").read_text()
    )
    return config


def test_state_dirs_live_under_xfer_owned_by_the_instances_user(
    site: tuple[SiteService, SiteRunner],
) -> None:
    service, _ = site
    service.create(PG)
    xfer = service.containers.xfer_dir("pg")
    own = [xfer / "data", xfer / "volume"] + [xfer / "state" / p.lstrip("/") for p in PG.state]
    for path in own:
        st = path.stat()
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755, path
        if AS_ROOT:
            assert (st.st_uid, st.st_gid) == (105, 111), path
    assert state_host_dir(xfer, "/var/lib/postgresql") == own[2]


def test_the_rootfs_holds_every_mount_point_and_the_workdir_passable_by_all(
    site: tuple[SiteService, SiteRunner],
) -> None:
    service, _ = site
    service.create(PG)
    rootfs = service.containers.dir("pg") / "bundle" / "rootfs"
    for point in ("var/lib/postgresql", "var/run/postgresql", "var/log/postgresql", "srv/pg"):
        assert (rootfs / point).is_dir(), point
    for path in [rootfs, *rootfs.rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o755, path
        assert path.stat().st_uid == os.geteuid()  # the root's, not the instance's


def test_the_bundle_runs_it_as_its_spec_says(site: tuple[SiteService, SiteRunner]) -> None:
    service, _ = site
    service.create(PG)
    config = _config(service, "pg")
    proc = config["process"]
    assert proc["user"] == {"uid": 105, "gid": 111, "additionalGids": [110]}
    assert proc["capabilities"]["bounding"] == ["CAP_SETUID", "CAP_SETGID"]
    assert proc["env"][1:] == ["PGDATA=/var/lib/postgresql/15/main"]
    assert proc["cwd"] == "/srv/pg" and proc["noNewPrivileges"] is True
    mounts = {m["destination"]: m for m in config["mounts"]}
    xfer = service.containers.xfer_dir("pg")
    for path in PG.state:
        assert mounts[path]["source"] == str(xfer / "state" / path.lstrip("/"))
        assert "rw" in mounts[path]["options"]
    assert service.containers.spec("pg") == PG  # instance.json keeps every field


def test_a_destination_builds_the_same_bundle(tmp_path: Path) -> None:
    source, _ = fake_site(tmp_path / "a")
    target, _ = fake_site(tmp_path / "b")
    source.create(PG)
    target.prepare_target(source.spec("pg"))
    a, b = _config(source, "pg"), _config(target, "pg")
    assert json.dumps(a).replace(str(tmp_path / "a"), "") == json.dumps(b).replace(
        str(tmp_path / "b"), ""
    )
    root_a, root_b = (s.containers.dir("pg") / "bundle" / "rootfs" for s in (source, target))
    assert tree(root_a) == tree(root_b)


def test_an_existing_dir_is_left_as_it_is(tmp_path: Path) -> None:
    """A state directory the service made 0700, or that a transfer brought, keeps its mode."""
    path = tmp_path / "state" / "var" / "lib" / "postgresql"
    assert make_own_dir(path, 105, 111)
    path.chmod(0o700)
    assert not make_own_dir(path, 0, 0)
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    if AS_ROOT:
        assert path.stat().st_uid == 105


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"state": ("/var/../../../etc",)}, "'..'"),
        ({"state": ("/usr/local/x",)}, "/usr is the host's"),
        ({"state": ("/var/a", "/var/a/b")}, "is inside"),
        ({"workdir": "relative"}, "working directory"),
    ],
)
def test_an_in_process_caller_with_a_bad_path_changes_nothing(
    site: tuple[SiteService, SiteRunner], change: dict[str, Any], why: str
) -> None:
    service, runner = site
    service.create(make_spec("svc"))
    service.stop("svc")
    root = service.containers.root

    def acts() -> list[list[str]]:  # what was run, but questions (runc state)
        return [c for c in runner.calls if "state" not in c]

    before = (tree(root), acts())
    bad = make_spec("pg", **change)
    with pytest.raises(Exception, match=why):
        service.create(bad)
    with pytest.raises(Exception, match=why):
        service.prepare_target(InstanceSpec.from_dict({**json.loads(bad.to_json()), "name": "svc"}))
    assert (tree(root), acts()) == before


def test_state_host_dir_refuses_what_would_leave_the_directory(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="'..'"):
        state_host_dir(tmp_path, "/var/../../x")
    with pytest.raises(ContainerError, match="site mec1: pg: "):
        fake_site(tmp_path)[0].containers.create(make_spec("pg", state=("/",)))
