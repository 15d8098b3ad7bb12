"""A site's images: received once, checked against their content address, unpacked once, shared.

Under the site's directory:
    .images/<hex>/rootfs/     the image's file system: the read-only root of every instance that
                              runs it here (runc bind-mounts it read-only; none writes to it)
    .images/<hex>/image.json  {digest, kind, bytes}: written last, so a directory without it
                              is an unpack that did not finish (removed at the next receive)
    .images/.incoming-*       an upload being received (removed when it ends, either way)

An upload is what `ground.rootfs_image.upload_chunks` sends. A rootfs tarball must hash to its
digest, and is unpacked by GNU tar (owners, modes, special bits kept; members with `..` or
absolute names refused). An OCI layout's manifest must hash to its digest, and `umoci raw unpack`
unpacks its layers: it checks every blob against its digest and applies whiteouts.

The mount points an instance needs (/proc, /data, its state directories...) are made in the
shared root as empty directories before it starts, never through a symbolic link of the image.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.errors import BadRequest, Conflict, InUse, StepFailed
from ground.rootfs_image import DIGEST_PATTERN, MAX_IMAGE_BYTES, UPLOAD_TAG, Kind, sha256_file
from ground.runner import CommandError, Runner, SubprocessRunner

log = logging.getLogger(__name__)

IMAGES = ".images"  # under the site's directory: no instance name starts with a dot
META = "image.json"
UPLOAD = "upload"  # in an incoming directory: the bytes as received
DIR_MODE = 0o755
_DIGEST = re.compile(DIGEST_PATTERN)


class ImageTooBig(BadRequest):
    """An upload over the site's limit (the API answers 413)."""

    status = 413


class NoSpace(StepFailed):
    """The site's disk filled while an image was received or unpacked (the API answers 507)."""

    status = 507


@dataclass(frozen=True)
class StoredImage:
    digest: str
    kind: str
    bytes: int  # as received


def check_digest(digest: str) -> str:
    if not _DIGEST.fullmatch(digest):
        raise BadRequest(f"{digest[:80]!r} is not an image digest (sha256:<64 hex digits>)")
    return digest


class ImageStore:
    """The images of one site, under `site_dir/.images`."""

    def __init__(self, site: str, site_dir: Path, runner: Runner | None = None) -> None:
        self.site = site
        self.root = site_dir / IMAGES
        self.runner: Runner = runner or SubprocessRunner()

    def _dir(self, digest: str) -> Path:
        return self.root / check_digest(digest).partition(":")[2]

    def get(self, digest: str) -> StoredImage | None:
        meta = self._dir(digest) / META
        try:
            return StoredImage(**json.loads(meta.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def rootfs(self, digest: str) -> Path:
        """The unpacked root of `digest` (Conflict if this site does not have it)."""
        if self.get(digest) is None:
            raise Conflict(f"site {self.site}: image {digest} is not here (send it first)")
        return self._dir(digest) / "rootfs"

    def stored(self) -> list[StoredImage]:
        if not self.root.is_dir():
            return []
        found = (self.get(f"sha256:{d.name}") for d in self.root.iterdir() if len(d.name) == 64)
        return sorted((i for i in found if i is not None), key=lambda i: i.digest)

    # ------------------------------------------------------------------ receiving

    def incoming(self) -> Path:
        """A new directory to receive an upload in (the caller removes it when done)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(DIR_MODE)
        return Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.root))

    def receive(self, digest: str, kind: Kind, chunks: Iterable[bytes]) -> StoredImage:
        """Store the upload of `digest` given as `chunks` (see `unpack`)."""
        check_digest(digest)
        have = self.get(digest)
        if have is not None:
            return have
        work = self.incoming()
        try:
            size, got = write_upload(work / UPLOAD, chunks)
            return self.unpack(digest, kind, work, size, got)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def unpack(self, digest: str, kind: Kind, work: Path, size: int, got: str) -> StoredImage:
        """Check the upload `work/upload` (`size` bytes hashing to `got`) against `digest`,
        unpack it, then make it visible at once. An image this site has already is not unpacked
        again (its stored record is returned). BadRequest if it is not what it claims."""
        have = self.get(digest)
        if have is not None:
            return have
        final = self._dir(digest)
        upload = work / UPLOAD
        rootfs = work / "image" / "rootfs"
        try:
            if final.exists():  # an unpack that did not finish
                shutil.rmtree(final)
            rootfs.parent.mkdir()
            if kind == "tar":
                if got != digest:
                    raise BadRequest(f"the tarball hashes to {got}, not to {digest}")
                rootfs.mkdir(mode=DIR_MODE)
                tar = ["tar", "-x", "-p", "--numeric-owner", "-C", str(rootfs), "-f", str(upload)]
                self._run(tar)
            else:
                self._unpack_layout(digest, upload, work / "layout", rootfs)
            rootfs.chmod(DIR_MODE)  # others pass through it whatever the archive said of "."
            stored = StoredImage(digest=digest, kind=kind, bytes=size)
            (rootfs.parent / META).write_text(json.dumps(asdict(stored)))
            try:
                rootfs.parent.rename(final)
            except OSError:  # another upload of the same image finished first
                if self.get(digest) is None:
                    raise
            log.info("site %s: image %s received (%s, %d bytes)", self.site, digest, kind, size)
            return stored
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise NoSpace(f"site {self.site}: disk full while receiving {digest}") from exc
            raise

    def _unpack_layout(self, digest: str, upload: Path, layout: Path, rootfs: Path) -> None:
        layout.mkdir()
        self._run(["tar", "-x", "--no-same-owner", "-C", str(layout), "-f", str(upload)])
        manifest = layout / "blobs" / "sha256" / digest.partition(":")[2]
        if not manifest.is_file():
            raise BadRequest(f"the upload holds no manifest {digest}")
        got = sha256_file(manifest)
        if got != digest:
            raise BadRequest(f"manifest {digest} hashes to {got}")
        # umoci makes the rootfs itself (and refuses one that exists)
        self._run(["umoci", "raw", "unpack", "--image", f"{layout}:{UPLOAD_TAG}", str(rootfs)])

    def _run(self, argv: list[str]) -> None:
        try:
            self.runner.run(argv)
        except CommandError as exc:
            text = str(exc)
            if "No space left" in text:
                raise NoSpace(f"site {self.site}: disk full while unpacking an image") from exc
            raise BadRequest(f"site {self.site}: the image cannot be unpacked: {text}") from exc

    # ------------------------------------------------------------------ using

    def make_mountpoints(self, digest: str, points: Iterable[str]) -> Path:
        """The root of `digest` with each of `points` in it (new ones empty, mode 0755);
        BadRequest if one passes through a symbolic link or a file of the image."""
        rootfs = self.rootfs(digest)
        for point in points:
            path = rootfs
            for part in Path(point.lstrip("/")).parts:
                path = path / part
                if path.is_symlink() or (path.exists() and not path.is_dir()):
                    raise BadRequest(
                        f"site {self.site}: image {digest[:19]}: {point} cannot be a mount point: "
                        f"/{path.relative_to(rootfs)} is a symbolic link or a file in the image"
                    )
                if not path.exists():
                    with contextlib.suppress(FileExistsError):  # another instance made it
                        path.mkdir(mode=DIR_MODE)
                        path.chmod(DIR_MODE)
        return rootfs

    def seed(self, digest: str, path: str, into: Path) -> bool:
        """Copy what the image holds at `path` (a directory: owners, modes and links kept) into
        the empty directory `into`, as a container engine fills a new volume; whether it did."""
        src = self.rootfs(digest) / path.lstrip("/")
        parts = Path(path.lstrip("/")).parts
        walk = self.rootfs(digest)
        for part in parts:
            walk = walk / part
            if walk.is_symlink():
                return False
        if not src.is_dir() or any(into.iterdir()):
            return False
        self._run(["cp", "-a", "--", f"{src}/.", str(into)])
        return True

    def remove(self, digest: str, used_by: Iterable[str]) -> None:
        users = sorted(used_by)
        if users:
            raise InUse(f"site {self.site}: image {digest} is used by {', '.join(users)}")
        shutil.rmtree(self._dir(digest), ignore_errors=True)


def write_upload(path: Path, chunks: Iterable[bytes]) -> tuple[int, str]:
    """Write `chunks` to `path`; (bytes, sha256 digest). ImageTooBig past MAX_IMAGE_BYTES."""
    h = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        for chunk in chunks:
            size += len(chunk)
            if size > MAX_IMAGE_BYTES:
                raise ImageTooBig(f"an image has at most {MAX_IMAGE_BYTES} bytes")
            h.update(chunk)
            f.write(chunk)
    return size, "sha256:" + h.hexdigest()
