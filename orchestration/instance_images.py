"""Instances that run an image: what the image says of how to run, and sending it to sites.

The scenario names the image (`image:`, ground.rootfs_image). Its config gives the defaults an
instance's own fields override: the command (Entrypoint + Cmd), the environment (the instance's
variables win), the working directory and the user. User and group names are resolved against
the image's own /etc/passwd and /etc/group, not the host's: they are what its processes see.

A site gets an image once: `ensure` asks it (`GET /v1/images/{digest}`) and sends the image only
when it does not have it, so a migration to a site that has it copies nothing of it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ground.instance_env import env_names
from ground.instance_fs import DEFAULT_WORKDIR
from ground.rootfs_image import ImageError, RootfsImage, open_image, read_files, upload_chunks
from ground.users import Accounts
from migration.site import SiteError
from topology.scenario import InstanceSpec as ScenarioInstance

log = logging.getLogger(__name__)


@runtime_checkable
class ImageSite(Protocol):
    """A site that holds images (orchestration.agent_client.AgentClient)."""

    name: str

    def image(self, digest: str) -> dict[str, Any] | None: ...

    def put_image(self, digest: str, kind: str, chunks: Any) -> dict[str, Any]: ...


class ImageUnusable(ValueError):
    """An instance's image cannot be used (missing, not an image, no command): the message
    names the instance, the path and what is wrong."""


@dataclass(frozen=True)
class Sent:
    """What `ensure` did at a site: the bytes it sent (0: the site had the image)."""

    digest: str
    bytes: int
    seconds: float


@dataclass(frozen=True)
class HowToRun:
    """An instance's command, environment, working directory and user, image defaults filled."""

    args: tuple[str, ...]
    env: tuple[str, ...]
    workdir: str
    user: str | None


def _stamp(ref: str) -> tuple[int, int]:
    """When and how big the file that says what `ref` is was last (0, 0 if unreadable)."""
    path = Path(ref)
    if not path.exists():
        path = Path(ref.rpartition(":")[0])
    if path.is_dir():
        path = path / "index.json"
    try:
        st = path.stat()
    except OSError:
        return 0, 0
    return st.st_mtime_ns, st.st_size


class ImageSupply:
    """The images of a scenario's instances, opened once each."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, int, int], RootfsImage] = {}

    def of(self, inst: ScenarioInstance) -> RootfsImage | None:
        """The instance's image, opened again when its file changed (a rebuilt image has
        another address)."""
        if inst.image is None:
            return None
        key = (inst.image, *_stamp(inst.image))
        if key not in self._open:
            try:
                self._open[key] = open_image(inst.image)
            except ImageError as exc:
                raise ImageUnusable(f"{inst.name}: image: {exc}") from None
        return self._open[key]

    def accounts(self, inst: ScenarioInstance) -> Accounts | None:
        """The image's own accounts (None without an image)."""
        image = self.of(inst)
        if image is None:
            return None
        try:
            files = read_files(image, ("etc/passwd", "etc/group"))
        except ImageError as exc:
            raise ImageUnusable(f"{inst.name}: image: {exc}") from None
        return Accounts.parse(
            files.get("etc/passwd", b"").decode(errors="replace"),
            files.get("etc/group", b"").decode(errors="replace"),
        )

    def how_to_run(self, inst: ScenarioInstance) -> HowToRun:
        image = self.of(inst)
        if image is None:
            return HowToRun(inst.command, inst.env, inst.workdir, inst.user)
        config = image.config
        args = inst.command or config.command
        if not args:
            raise ImageUnusable(
                f"{inst.name}: image {image.path} names no command (no Entrypoint or Cmd, as a "
                "rootfs tarball never does): give the instance a `command:`"
            )
        own = set(env_names(inst.env))
        env = tuple(e for e in config.env if e.partition("=")[0] not in own) + inst.env
        workdir = inst.workdir
        if "workdir" not in inst.model_fields_set:
            workdir = config.workdir or DEFAULT_WORKDIR
        user = inst.user if inst.user is not None else config.user
        return HowToRun(args, env, workdir, user)

    def ensure(self, inst: ScenarioInstance, site: object) -> Sent | None:
        """Make sure `site` has the instance's image (None: it runs none). SiteError if the
        site cannot take it (the image does not change anywhere else)."""
        image = self.of(inst)
        if image is None:
            return None
        if not isinstance(site, ImageSite):
            raise SiteError(f"site {getattr(site, 'name', site)}: cannot receive images")
        start = time.monotonic()
        if site.image(image.digest) is not None:
            return Sent(image.digest, 0, time.monotonic() - start)
        log.info("sending image %s of %s to site %s", image.digest[:19], inst.name, site.name)
        try:
            got = site.put_image(image.digest, image.kind, upload_chunks(image))
        except (OSError, ImageError) as exc:  # its file went or changed while it was read
            raise ImageUnusable(f"{inst.name}: image {image.path}: {exc}") from None
        took = time.monotonic() - start
        log.info(
            "site %s has image %s (%d bytes in %.1f s)",
            site.name,
            image.digest[:19],
            got.get("bytes", 0),
            took,
        )
        return Sent(image.digest, int(got.get("bytes", 0)), took)
