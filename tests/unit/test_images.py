"""Images (issue 14): a rootfs tarball or an OCI layout (made here by the real umoci), addressed
by content, received once per site and unpacked with real tar and umoci, shared read-only by
the instances that run it; the image's config and accounts are what its instances run with."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent.api import create_agent_app
from agent.errors import BadRequest, Conflict
from agent.image_store import IMAGES, ImageStore
from agent.service import SiteService
from ground.rootfs_image import ImageError, open_image, read_files, upload_chunks
from ground.runner import SubprocessRunner
from orchestration.instance_images import ImageSupply
from orchestration.orchestrator import Orchestrator
from tests.unit.migration_fakes import make_spec
from tests.unit.test_site_service import _service
from topology.scenario import ScenarioError, load_scenario, parse_scenario

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1234:1235::/home/app:/bin/sh\n"
GROUP = "root:x:0:\napp:x:1235:\nextra:x:1300:app\n"


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, **kw: Any) -> None:
    info = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(info, k, v)
    if data is None and info.type == tarfile.REGTYPE:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    if data is not None:
        info.size, info.mode = len(data), kw.get("mode", 0o644)
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def rootfs_tar(path: Path) -> Path:
    with tarfile.open(path, "w") as tar:
        for d in ("etc", "usr", "usr/bin", "var", "var/lib", "var/lib/app", "run"):
            _add(tar, d)
        _add(tar, "etc/passwd", PASSWD.encode())
        _add(tar, "etc/group", GROUP.encode())
        _add(tar, "etc/motd", b"welcome\n")
        _add(tar, "usr/bin/hello", b"#!/bin/sh\necho hello\n", mode=0o755)
        _add(tar, "var/lib/app/seed.txt", b"seeded\n", uid=1234, gid=1235)
        _add(tar, "bin", type=tarfile.SYMTYPE, linkname="usr/bin")
        _add(tar, "var/run", type=tarfile.SYMTYPE, linkname="/run")
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("images")
    tar = rootfs_tar(d / "app.tar")
    layout = d / "layout"

    def umoci(*args: str) -> None:
        subprocess.run(["umoci", *args], check=True, capture_output=True)

    umoci("init", "--layout", str(layout))
    umoci("new", "--image", f"{layout}:app")
    umoci("raw", "add-layer", "--image", f"{layout}:app", str(tar))
    with tarfile.open(d / "whiteout.tar", "w") as wt:  # a second layer: etc/motd deleted
        _add(wt, "etc")
        _add(wt, "etc/.wh.motd", b"")
    umoci("raw", "add-layer", "--image", f"{layout}:app", str(d / "whiteout.tar"))
    umoci(
        "config", "--image", f"{layout}:app", "--config.entrypoint", "/usr/bin/hello",
        "--config.cmd", "--loud", "--config.user", "app", "--config.workingdir", "/var/lib/app",
        "--config.env", "MODE=image", "--config.env", "KEEP=1",
    )  # fmt: skip
    umoci("gc", "--layout", str(layout))
    return {"tar": tar, "layout": layout}


def test_a_tarball_is_addressed_by_its_bytes_and_a_layout_by_its_manifest(
    images: dict[str, Path],
) -> None:
    tar = open_image(str(images["tar"]))
    assert tar.kind == "tar"
    assert tar.digest == "sha256:" + hashlib.sha256(images["tar"].read_bytes()).hexdigest()
    oci = open_image(f"{images['layout']}:app")
    index = json.loads((images["layout"] / "index.json").read_text())
    assert oci.kind == "oci" and oci.digest == index["manifests"][0]["digest"]
    assert open_image(str(images["layout"])).digest == oci.digest  # its only image
    with pytest.raises(ImageError, match="no image tagged 'nope'.*app"):
        open_image(f"{images['layout']}:nope")
    with pytest.raises(ImageError, match="no such image"):
        open_image(str(images["tar"].parent / "absent.tar"))


def test_the_config_gives_command_environment_directory_and_user(
    images: dict[str, Path],
) -> None:
    c = open_image(f"{images['layout']}:app").config
    assert c.command == ("/usr/bin/hello", "--loud")
    assert "MODE=image" in c.env and c.workdir == "/var/lib/app" and c.user == "app"


def test_a_whiteout_in_a_later_layer_deletes_the_file(images: dict[str, Path]) -> None:
    files = read_files(open_image(f"{images['layout']}:app"), ("etc/passwd", "etc/motd"))
    assert files == {"etc/passwd": PASSWD.encode()}
    assert set(read_files(open_image(str(images["tar"])), ("etc/motd",))) == {"etc/motd"}


# ------------------------------------------------------------------ the site's store


@pytest.fixture()
def site(tmp_path: Path) -> SiteService:
    s = _service(tmp_path)
    s.containers.image_store = ImageStore("mec1", s.containers.root, SubprocessRunner())
    return s


@pytest.fixture()
def http(site: SiteService) -> Iterator[TestClient]:
    with TestClient(create_agent_app(site), raise_server_exceptions=False) as client:
        yield client


def _put(http: TestClient, ref: str, digest: str | None = None) -> Any:
    image = open_image(ref)
    return http.put(
        f"/v1/images/{digest or image.digest}",
        params={"kind": image.kind},
        content=b"".join(upload_chunks(image)),
    )


@pytest.mark.parametrize("kind", ["tar", "layout"])
def test_an_image_is_received_once_unpacked_and_listed(
    http: TestClient, site: SiteService, images: dict[str, Path], kind: str
) -> None:
    ref = str(images["tar"]) if kind == "tar" else f"{images['layout']}:app"
    digest = open_image(ref).digest
    assert http.get(f"/v1/images/{digest}").status_code == 404
    first = _put(http, ref)
    assert first.status_code == 200 and first.json()["received"] is True, first.text
    again = _put(http, ref)
    assert again.json()["received"] is False  # nothing unpacked twice
    assert http.get(f"/v1/images/{digest}").json()["digest"] == digest
    assert [i["digest"] for i in http.get("/v1/images").json()["images"]] == [digest]
    rootfs = site.containers.image_store.rootfs(digest)
    assert (rootfs / "usr/bin/hello").read_bytes() == b"#!/bin/sh\necho hello\n"
    assert os.readlink(rootfs / "bin") == "usr/bin"
    seed = (rootfs / "var/lib/app/seed.txt").stat()
    assert (seed.st_uid, seed.st_gid) == (1234, 1235)  # owners kept
    assert (rootfs / "etc/motd").exists() is (kind == "tar")  # the whiteout applied
    leftovers = [p.name for p in (site.containers.root / IMAGES).iterdir()]
    assert leftovers == [digest.partition(":")[2]]  # no upload left behind


def test_bytes_that_are_not_the_image_named_are_refused_and_leave_nothing(
    http: TestClient, site: SiteService, images: dict[str, Path]
) -> None:
    wrong = "sha256:" + "ab" * 32
    resp = _put(http, str(images["tar"]), digest=wrong)
    assert resp.status_code == 400 and "hashes to" in resp.json()["error"]
    resp = _put(http, f"{images['layout']}:app", digest=wrong)
    assert resp.status_code == 400 and "no manifest" in resp.json()["error"]
    assert list((site.containers.root / IMAGES).iterdir()) == []
    assert http.put("/v1/images/sha256:xyz", params={"kind": "tar"}).status_code == 422
    assert http.put(f"/v1/images/{wrong}", params={"kind": "zip"}).status_code == 422


def test_an_instance_runs_on_the_shared_root_and_its_state_starts_as_the_image_has_it(
    http: TestClient, site: SiteService, images: dict[str, Path]
) -> None:
    digest = open_image(str(images["tar"])).digest
    spec = make_spec("svc", image=digest, state=("/var/lib/app",))
    with pytest.raises(Conflict, match="not here"):
        site.create(spec)  # refused before anything is made
    assert site.containers.instances() == []
    assert _put(http, str(images["tar"])).status_code == 200
    site.create(spec)
    config = json.loads((site.containers.dir("svc") / "bundle/config.json").read_text())
    rootfs = site.containers.image_store.rootfs(digest)
    assert config["root"] == {"path": str(rootfs), "readonly": True}
    mounted = {m["destination"] for m in config["mounts"]}
    assert "/usr" not in mounted and "/etc" not in mounted  # the image's own, not the host's
    assert (rootfs / "data").is_dir() and (rootfs / "proc").is_dir()  # mount points made
    state = site.containers.xfer_dir("svc") / "state/var/lib/app/seed.txt"
    assert state.read_text() == "seeded\n"  # copied, as an engine fills a new volume
    assert http.delete(f"/v1/images/{digest}").status_code == 409  # svc runs it
    site.destroy("svc")
    assert http.delete(f"/v1/images/{digest}").status_code == 200
    assert http.get(f"/v1/images/{digest}").status_code == 404


def test_a_mount_point_through_a_link_of_the_image_is_refused(
    http: TestClient, site: SiteService, images: dict[str, Path]
) -> None:
    digest = open_image(str(images["tar"])).digest
    assert _put(http, str(images["tar"])).status_code == 200
    with pytest.raises(BadRequest, match="symbolic link"):
        site.create(make_spec("svc", image=digest, state=("/var/run/app",)))
    assert not Path("/run/app").exists()  # nothing made through the image's /var/run -> /run
    assert site.containers.instances() == []


# ------------------------------------------------------------------ orchestration


SCENARIO = """
name: imgs
sites: [{name: mec1}, {name: mec2}]
links: [{between: [mec1, mec2], capacity: 1Gbit}]
instances:
  - name: app
    site: mec1
    image: IMAGE
    ip: 10.0.0.21
    groups: [extra]
    env: {MODE: scenario}
"""


class ImageSite:
    """A site that holds images, counting what it is sent."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.have: dict[str, int] = {}
        self.sent = 0

    def image(self, digest: str) -> dict[str, Any] | None:
        return {"digest": digest} if digest in self.have else None

    def put_image(self, digest: str, kind: str, chunks: Any) -> dict[str, Any]:
        size = sum(len(c) for c in chunks)
        self.have[digest] = size
        self.sent += size
        return {"digest": digest, "kind": kind, "bytes": size}


def test_an_instance_runs_as_its_image_says_unless_the_scenario_says_otherwise(
    tmp_path: Path, images: dict[str, Path]
) -> None:
    (tmp_path / "sc.yaml").write_text(SCENARIO.replace("IMAGE", f"{images['layout']}:app"))
    sc = load_scenario(tmp_path / "sc.yaml")
    orch = Orchestrator(sc, {"mec1": ImageSite("mec1"), "mec2": ImageSite("mec2")})  # type: ignore[dict-item]
    spec = orch.spec_at("app", "mec1")
    assert spec.args == ("/usr/bin/hello", "--loud")
    assert spec.workdir == "/var/lib/app"
    assert "MODE=scenario" in spec.env and "KEEP=1" in spec.env and "MODE=image" not in spec.env
    # `app` and `extra` are the image's accounts, unknown to this host
    assert (spec.uid, spec.gid, spec.groups) == (1234, 1235, (1300,))
    assert spec.image == open_image(f"{images['layout']}:app").digest


def test_a_site_is_sent_an_image_only_when_it_has_not_got_it(
    tmp_path: Path, images: dict[str, Path]
) -> None:
    # relative to the scenario file, as a user writes it
    (tmp_path / "app.tar").write_bytes(images["tar"].read_bytes())
    text = SCENARIO.replace("IMAGE", "app.tar").replace("groups: [extra]", "command: [/bin/x]")
    (tmp_path / "sc.yaml").write_text(text)
    sc = load_scenario(tmp_path / "sc.yaml")
    assert sc.instance("app").image == str(tmp_path / "app.tar")
    mec1, mec2 = ImageSite("mec1"), ImageSite("mec2")
    supply = ImageSupply()
    size = (tmp_path / "app.tar").stat().st_size
    sent = supply.ensure(sc.instance("app"), mec2)
    assert sent is not None and sent.bytes == size and mec2.sent == size
    assert supply.ensure(sc.instance("app"), mec2).bytes == 0  # type: ignore[union-attr]
    assert mec2.sent == size and mec1.sent == 0


def test_an_instance_needs_a_command_or_an_image(tmp_path: Path) -> None:
    text = SCENARIO.replace("    image: IMAGE\n", "")
    with pytest.raises(ScenarioError, match="command: required"):
        parse_scenario(text)
