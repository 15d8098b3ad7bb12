"""Input that is never trusted, at a site agent (issue 10): every field of every body and every
path parameter is bounded; bad input gets a 4xx that the agent's OpenAPI document gives the
operation, in the documented shape, and changes nothing: no directory or file under the site's
root, no command run (runc, CRIU, ip, nft, ovs-vsctl), everything faked (agent_fakes).

Nothing in a request reaches a path outside the site's own directory: instance names are plain
names, a spec's files are copied only under plain names and only from the directories the agent
copies from (the project's workloads/, plus --files-from), symlinks resolved.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent.api import create_agent_app
from agent.api_models import MAX_BODY_BYTES
from agent.errors import BadRequest
from agent.files import FILES_FROM_ENV, WORKLOADS_DIR, FileNotAllowed, allowed_dirs, checked_files
from agent.service import SiteService
from tests.unit.agent_fakes import SiteRunner, fake_site, no_transfers, tree
from tests.unit.migration_fakes import make_spec

MEMHOG = str(WORKLOADS_DIR / "memhog.py")
SPEC: dict[str, Any] = {
    "name": "web",
    "args": ["/usr/bin/python3", "/data/memhog.py", "--port", "7000"],
    "ip": "10.0.0.22",
    "prefix": 24,
    "mac": "02:00:0a:00:00:16",
    "port": 4,
    "memory_bytes": 64 << 20,
    "files": {"memhog.py": MEMHOG},
    "volume": False,
}


class Site:
    """Site mec1 holding `svc` (running), its API, and what bad input must leave alone."""

    def __init__(self, tmp_path: Path, files_from: list[Path] | None = None) -> None:
        self.service, self.runner = fake_site(tmp_path, files_from=files_from)
        self.service.create(make_spec("svc"))
        self.root = tmp_path
        self.http = TestClient(create_agent_app(self.service), raise_server_exceptions=False)
        self.doc = self.http.get("/v1/openapi.json").json()

    def observe(self) -> tuple[list[str], int, list[str]]:
        return tree(self.root), len(self.runner.calls), self.service.health()["instances"]

    def refused(
        self,
        method: str,
        path: str,
        status: int,
        *,
        body: Any = None,
        content: bytes | None = None,
        template: str | None = None,
    ) -> dict[str, Any]:
        """Send a bad request: `status`, documented for the operation, in the documented shape,
        and nothing changed on disk or run."""
        before = self.observe()
        if content is not None:
            headers = {"content-type": "application/json"}
            resp = self.http.request(method, path, content=content, headers=headers)
        else:
            resp = self.http.request(method, path, json=body)
        assert resp.status_code == status, resp.text
        answer: dict[str, Any] = resp.json()
        assert isinstance(answer["error"], str) and answer["error"]
        if status == 422 or "malformed" in answer["error"]:
            assert answer["problems"] and all(
                {"path", "message"} <= set(p) for p in answer["problems"]
            )
        operation = self.doc["paths"][template or path][method.lower()]
        assert str(status) in operation["responses"], (method, path, status)
        assert self.observe() == before, "a refused request changed something"
        return answer


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    no_transfers(monkeypatch)
    monkeypatch.delenv(FILES_FROM_ENV, raising=False)
    s = Site(tmp_path)
    yield s
    s.http.close()


def _spec(**changes: Any) -> dict[str, Any]:
    out = {**SPEC, **changes}
    return {k: v for k, v in out.items() if v is not ...}


BAD_SPECS = [
    pytest.param(_spec(name="../web"), "name", id="name-dotdot"),
    pytest.param(_spec(name="a/b"), "name", id="name-slash"),
    pytest.param(_spec(name="."), "name", id="name-dot"),
    pytest.param(_spec(name=".hidden"), "name", id="name-leading-dot"),
    pytest.param(_spec(name="x" * 64), "name", id="name-long"),
    pytest.param(_spec(name=""), "name", id="name-empty"),
    pytest.param(_spec(args=[]), "args", id="args-none"),
    pytest.param(_spec(args=["a"] * 257), "args", id="args-many"),
    pytest.param(_spec(args=["/bin/sh\x00-c"]), "args[0]", id="args-nul"),
    pytest.param(_spec(args=["x" * 4097]), "args[0]", id="args-long"),
    pytest.param(_spec(args="/bin/true"), "args", id="args-string"),
    pytest.param(_spec(ip="10.0.0.300"), "ip", id="ip-bad"),
    pytest.param(_spec(ip="::1"), "ip", id="ip-v6"),
    pytest.param(_spec(prefix=0), "prefix", id="prefix-0"),
    pytest.param(_spec(prefix=33), "prefix", id="prefix-33"),
    pytest.param(_spec(mac="02:00:0a:00:00"), "mac", id="mac-short"),
    pytest.param(_spec(mac="01:00:5e:00:00:01"), "mac", id="mac-multicast"),
    pytest.param(_spec(mac="ff:ff:ff:ff:ff:ff"), "mac", id="mac-broadcast"),
    pytest.param(_spec(mac="00:00:00:00:00:00"), "mac", id="mac-zero"),
    pytest.param(_spec(port=0), "port", id="port-0"),
    pytest.param(_spec(port=65280), "port", id="port-reserved"),
    pytest.param(_spec(port="4"), "port", id="port-string"),
    pytest.param(_spec(port=True), "port", id="port-bool"),
    pytest.param(_spec(memory_bytes=0), "memory_bytes", id="memory-0"),
    pytest.param(_spec(memory_bytes=1 << 41), "memory_bytes", id="memory-huge"),
    pytest.param(_spec(files={"../memhog.py": MEMHOG}), "files", id="file-dotdot"),
    pytest.param(_spec(files={"bin/memhog.py": MEMHOG}), "files", id="file-slash"),
    pytest.param(_spec(files={"..": MEMHOG}), "files", id="file-dotdot-only"),
    pytest.param(_spec(files={"memhog.py": "memhog.py"}), "files.memhog.py", id="source-rel"),
    pytest.param(_spec(files={f"f{i}": MEMHOG for i in range(65)}), "files", id="files-many"),
    pytest.param(_spec(volume="yes"), "volume", id="volume-string"),
    pytest.param(_spec(extra=1), "extra", id="unknown-field"),
    pytest.param(_spec(ip=...), "ip", id="ip-missing"),
]


@pytest.mark.parametrize(("body", "where"), BAD_SPECS)
def test_a_bad_spec_gets_422_and_nothing_is_created(
    site: Site, body: dict[str, Any], where: str
) -> None:
    answer = site.refused("POST", "/v1/instances", 422, body=body)
    assert any(p["path"].startswith(where) for p in answer["problems"]), answer
    target = "/v1/instances/{name}/prepare-target"
    site.refused("POST", "/v1/instances/web/prepare-target", 422, body=body, template=target)


@pytest.mark.parametrize(
    "source",
    [
        "/etc/passwd",
        "/etc/shadow",
        f"{WORKLOADS_DIR}/../README.md",  # inside, lexically; outside once resolved
        f"{WORKLOADS_DIR}/nonexistent.py",
        str(WORKLOADS_DIR),  # a directory
    ],
)
def test_a_file_from_outside_the_allowed_directories_gets_400(site: Site, source: str) -> None:
    answer = site.refused("POST", "/v1/instances", 400, body=_spec(files={"x.py": source}))
    assert "copies from" in answer["error"] or "regular file" in answer["error"]
    assert "--files-from" in answer["error"] or "regular file" in answer["error"]


def test_a_symlink_out_of_an_allowed_directory_is_followed_and_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_transfers(monkeypatch)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "ok.txt").write_text("fine")
    (shared / "escape.txt").symlink_to("/etc/passwd")
    s = Site(tmp_path / "site", files_from=[WORKLOADS_DIR, shared])
    s.refused("POST", "/v1/instances", 400, body=_spec(files={"x.txt": str(shared / "escape.txt")}))
    # a file in the directory the operator allowed is copied, under its plain name
    assert (
        s.http.post(
            "/v1/instances", json=_spec(files={"x.txt": str(shared / "ok.txt")})
        ).status_code
        == 201
    )
    assert (s.service.containers.data_dir("web") / "x.txt").read_text() == "fine"


def test_the_default_allows_the_workloads_only(site: Site) -> None:
    assert site.service.files_from == (WORKLOADS_DIR,)
    resp = site.http.post("/v1/instances", json=SPEC)
    assert resp.status_code == 201, resp.text
    copied = site.service.containers.data_dir("web") / "memhog.py"
    assert copied.read_bytes() == Path(MEMHOG).read_bytes()


def test_in_process_callers_are_checked_too(site: Site) -> None:
    before = site.observe()
    with pytest.raises(BadRequest, match="copies from"):
        site.service.create(make_spec("web", files={"x": "/etc/passwd"}))
    with pytest.raises(BadRequest, match="plain file name"):
        site.service.create(make_spec("web", files={"../x": MEMHOG}))
    with pytest.raises(BadRequest, match="not an instance name"):
        site.service.create(make_spec("../web"))
    assert site.observe() == before


def test_a_target_checks_names_only_its_data_arrives_from_the_source(site: Site) -> None:
    """A migration's target copies nothing: the source's files need not exist on its host."""
    body = _spec(files={"memhog.py": "/opt/elsewhere/memhog.py"})
    resp = site.http.post("/v1/instances/web/prepare-target", json=body)
    assert resp.status_code == 200, resp.text
    assert not (site.service.containers.data_dir("web") / "memhog.py").exists()


def test_a_target_whose_spec_names_another_instance_gets_422(site: Site) -> None:
    answer = site.refused(
        "POST",
        "/v1/instances/svc/prepare-target",
        422,
        body=SPEC,
        template="/v1/instances/{name}/prepare-target",
    )
    assert answer["problems"][0]["path"] == "name"


STEP = "/v1/instances/{name}"


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("checkpoint", {"hold_url": "file:///etc/passwd"}, "hold_url"),
        ("checkpoint", {"hold_url": "gopher://10.0.0.9:70/x"}, "hold_url"),
        ("checkpoint", {"hold_url": "http://10.0.0.9/`reboot`"}, "hold_url"),
        ("checkpoint", {"hold_url": "http://x/" + "a" * 2048}, "hold_url"),
        ("checkpoint", {"leave_running": "true"}, "leave_running"),
        ("checkpoint", {"leave_running": 1}, "leave_running"),
        ("pre-dump", {"round": 0}, "round"),
        ("pre-dump", {"round": 1001}, "round"),
        ("pre-dump", {"round": "1"}, "round"),
        ("pre-dump", {}, "round"),
        ("send", {"peer": "10.0.0.2; rm -rf /", "port": 7100}, "peer"),
        ("send", {"peer": "agent2", "port": 7100}, "peer"),
        ("send", {"peer": "10.0.0.2", "port": 0}, "port"),
        ("send", {"peer": "10.0.0.2", "port": 65536}, "port"),
        ("send", {"peer": "10.0.0.2", "port": 7100, "pace_bps": 999}, "pace_bps"),
        ("send", {"peer": "10.0.0.2", "port": 7100, "pace_bps": 10**11 + 1}, "pace_bps"),
        ("send", {"peer": "10.0.0.2", "port": 7100, "pace_bps": "40Mbit"}, "pace_bps"),
        ("send", {"peer": "10.0.0.2", "port": 7100, "pace_bps": 4e7}, "pace_bps"),
        ("link", {"up": "down"}, "up"),
        ("lazy-dump", {"page_server": "10.0.0.1:0"}, "page_server"),
        ("lazy-dump", {"page_server": "10.0.0.1:99999"}, "page_server"),
        ("lazy-dump", {"page_server": "10.0.0.999:7101"}, "page_server"),
        ("lazy-dump", {"page_server": "host:7101"}, "page_server"),
        ("lazy-dump", {"page_server": "10.0.0.1:7101", "send_to": "10.0.0.2:99999"}, "send_to"),
        ("lazy-dump", {"page_server": "10.0.0.1:7101", "send_to": "host:7100"}, "send_to"),
        ("lazy-dump", {"page_server": "10.0.0.1:7101", "pace_bps": 999}, "pace_bps"),
        ("lazy-dump", {"page_server": "10.0.0.1:7101", "pace_bps": 10**11 + 1}, "pace_bps"),
        ("restore", {"lazy_from": "10.0.0.1"}, "lazy_from"),
        ("restore", {"lazy_from": "10.0.0.1:7101 --inherit-fd"}, "lazy_from"),
        ("receive", {"lazy_from": "10.0.0.1"}, "lazy_from"),
        ("receive", {"lazy_from": "10.0.0.1:7101 -D /"}, "lazy_from"),
        ("receive", {"lazy_from": "host:7101"}, "lazy_from"),
    ],
)
def test_a_bad_step_body_gets_422_and_runs_nothing(
    site: Site, path: str, body: dict[str, Any], where: str
) -> None:
    answer = site.refused(
        "POST", f"/v1/instances/svc/{path}", 422, body=body, template=f"{STEP}/{path}"
    )
    assert any(p["path"] == where for p in answer["problems"]), answer


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("GET", "/v1/instances/%2E%2E", STEP),
        ("DELETE", "/v1/instances/%2E%2E", STEP),
        ("DELETE", "/v1/instances/.hidden", STEP),
        ("DELETE", "/v1/instances/a%20b", STEP),
        ("DELETE", "/v1/instances/" + "x" * 64, STEP),
        ("POST", "/v1/instances/%2E%2E/stop", f"{STEP}/stop"),
        ("POST", "/v1/instances/a;b/start", f"{STEP}/start"),
        ("POST", "/v1/instances/a%00b/resume", f"{STEP}/resume"),
    ],
)
def test_a_bad_instance_name_in_the_path_gets_422_and_reaches_nothing(
    site: Site, method: str, path: str, template: str
) -> None:
    answer = site.refused(method, path, 422, template=template)
    assert answer["problems"][0]["path"] == "name"


def test_a_name_with_a_slash_is_no_instance_of_this_api(site: Site) -> None:
    before = site.observe()
    resp = site.http.delete("/v1/instances/a%2F..%2F..%2Fetc")
    assert resp.status_code == 404 and set(resp.json()) == {"error"}
    assert site.observe() == before


def test_a_body_over_the_limit_gets_413_before_anything_reads_it(site: Site) -> None:
    big = json.dumps(_spec(args=["x" * 4000] * 20)).encode()
    assert len(big) > MAX_BODY_BYTES
    answer = site.refused("POST", "/v1/instances", 413, content=big)
    assert answer["context"] == {"limit_bytes": MAX_BODY_BYTES}


def test_malformed_json_gets_400(site: Site) -> None:
    answer = site.refused("POST", "/v1/instances", 400, content=b'{"name": "web",')
    assert "malformed JSON" in answer["error"]


def test_the_document_gives_every_bound(site: Site) -> None:
    schemas = site.doc["components"]["schemas"]
    spec = schemas["SpecBody"]["properties"]
    assert spec["name"]["maxLength"] == 63 and spec["name"]["pattern"]
    assert spec["args"]["maxItems"] == 256 and spec["args"]["items"]["maxLength"] == 4096
    assert spec["ip"]["format"] == "ipv4" and spec["mac"]["pattern"]
    assert (spec["prefix"]["minimum"], spec["prefix"]["maximum"]) == (1, 32)
    assert (spec["port"]["minimum"], spec["port"]["maximum"]) == (1, 65279)
    assert spec["files"]["maxProperties"] == 64
    assert spec["files"]["propertyNames"]["pattern"]
    assert spec["files"]["additionalProperties"]["pattern"] == "^/[^\\x00]*$"
    assert schemas["PreDumpBody"]["properties"]["round"]["maximum"] == 1000
    assert schemas["SendBody"]["properties"]["port"]["maximum"] == 65535
    pace = schemas["SendBody"]["properties"]["pace_bps"]["anyOf"][0]
    assert (pace["minimum"], pace["maximum"]) == (1000, 10**11)
    assert schemas["LazyBody"]["properties"]["page_server"]["pattern"]
    hold = schemas["CheckpointBody"]["properties"]["hold_url"]["anyOf"][0]
    assert hold["pattern"].startswith("^https?://") and hold["maxLength"] == 2048
    for path, operations in site.doc["paths"].items():
        for method, operation in operations.items():
            assert "500" in operation["responses"], (method, path)
            if "requestBody" in operation:
                assert {"413", "422"} <= set(operation["responses"]), (method, path)
            if "{name}" in path:
                assert "422" in operation["responses"], (method, path)
            name = next((p for p in operation.get("parameters", []) if p["name"] == "name"), None)
            if name is not None:
                assert name["schema"]["maxLength"] == 63 and name["schema"]["pattern"]


def test_the_allowed_directories(tmp_path: Path) -> None:
    env = {FILES_FROM_ENV: f"{tmp_path}:{tmp_path / 'b'}:"}
    assert allowed_dirs([tmp_path / "a"], env) == (
        WORKLOADS_DIR,
        (tmp_path / "a").resolve(),
        tmp_path.resolve(),
        (tmp_path / "b").resolve(),
    )
    assert allowed_dirs(env={}) == (WORKLOADS_DIR,)
    assert checked_files({"m.py": MEMHOG}, None) == {"m.py": MEMHOG}
    with pytest.raises(FileNotAllowed, match="plain file name"):
        checked_files({"a/b": MEMHOG}, None)


def test_a_refused_spec_is_also_refused_over_the_client(site: Site) -> None:
    """What AgentClient raises for the agent's 400: BadRequest, with the site in it."""
    from orchestration.agent_client import AgentClient

    client = AgentClient("mec1", "10.0.0.1", url="http://testserver", http=site.http)
    with pytest.raises(BadRequest, match="site mec1: web: files.x: '/etc/passwd'"):
        client.create(make_spec("web", files={"x": "/etc/passwd"}))


def test_service_takes_its_allowed_directories(tmp_path: Path) -> None:
    service, _ = fake_site(tmp_path, files_from=[tmp_path])
    assert isinstance(service, SiteService) and service.files_from == (tmp_path,)
    assert isinstance(SiteRunner().calls, list)
