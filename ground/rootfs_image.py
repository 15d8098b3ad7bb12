"""Images an instance may run from: an OCI image layout, or a root file system tarball.

- An **OCI image layout** is a directory with `oci-layout`, `index.json` and `blobs/sha256/...`
  (`podman save --format oci-dir`, `skopeo copy ... oci:DIR:TAG`, `umoci`). A scenario names it
  `DIR` (its only image) or `DIR:TAG` (`org.opencontainers.image.ref.name` in its index). Its
  content address is its manifest's digest, and its config gives the default command
  (Entrypoint + Cmd), environment, working directory and user.
- A **rootfs tarball** (`podman export`, `docker export`, `tar -C rootfs -c .`; plain, gzip or
  zstd) is one file system and no config. Its content address is the sha256 of the file.

Either is sent to a site once (`upload_chunks`), checked against its address there and unpacked
into a read-only directory that every instance using it at that site shares
(`agent.image_store`). The address is what a migration compares: a destination that has it gets
nothing again. Pure file reading; nothing here starts a program.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
CHUNK = 1 << 20
MAX_IMAGE_BYTES = 16 * 2**30  # what a site accepts as one upload
MAX_REF_CHARS = 1024
UPLOAD_TAG = "mecmig"  # the one tag of the layout a site receives
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd")
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

Kind = Literal["oci", "tar"]


class ImageError(ValueError):
    """An image that cannot be used, and why (the path and what is wrong with it)."""


@dataclass(frozen=True)
class ImageConfig:
    """What an OCI image's config says about how to run it (all empty for a tarball)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None

    @property
    def command(self) -> tuple[str, ...]:
        return self.entrypoint + self.cmd


@dataclass(frozen=True)
class RootfsImage:
    """An image found on this machine: where, what kind, its content address, its config."""

    path: Path
    kind: Kind
    digest: str  # sha256:<hex>
    config: ImageConfig = field(default_factory=ImageConfig)
    manifest: dict[str, Any] = field(default_factory=dict)  # oci only

    def blob(self, digest: str) -> Path:
        algo, _, hexa = digest.partition(":")
        if algo != "sha256" or len(hexa) != 64 or not all(c in "0123456789abcdef" for c in hexa):
            raise ImageError(f"{self.path}: {digest[:80]!r} is not a sha256 digest")
        return self.path / "blobs" / "sha256" / hexa

    def layers(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("layers", []))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ImageError(f"{path}: cannot read the {what}: {exc}") from None
    if not isinstance(data, dict):
        raise ImageError(f"{path}: the {what} is not a JSON object")
    return data


def _split_ref(ref: str) -> tuple[Path, str | None]:
    """`DIR:TAG` -> (DIR, TAG) when DIR is a layout; otherwise the whole text is a path."""
    whole = Path(ref)
    if whole.exists():
        return whole, None
    head, sep, tag = ref.rpartition(":")
    if sep and head and "/" not in tag and Path(head).is_dir():
        return Path(head), tag
    return whole, None


def open_image(ref: str, base: Path | None = None) -> RootfsImage:
    """The image `ref` names (a layout `DIR[:TAG]` or a tarball; relative to `base`)."""
    if not ref or len(ref) > MAX_REF_CHARS:
        raise ImageError(f"an image reference has 1 to {MAX_REF_CHARS} characters")
    if base is not None and not Path(ref).is_absolute():
        ref = str(base / ref)
    path, tag = _split_ref(ref)
    if path.is_dir():
        return _open_layout(path, tag)
    if path.is_file():
        if tag is None and path.name.endswith(TAR_SUFFIXES):
            return RootfsImage(path=path, kind="tar", digest=sha256_file(path))
        raise ImageError(
            f"{path}: not an image: a rootfs tarball's name ends in {', '.join(TAR_SUFFIXES)}, "
            "and an OCI layout is a directory"
        )
    raise ImageError(f"{ref}: no such image (an OCI layout directory or a rootfs tarball)")


def _open_layout(path: Path, tag: str | None) -> RootfsImage:
    layout = _json(path / "oci-layout", "oci-layout file (is this an OCI image layout?)")
    if layout.get("imageLayoutVersion") != "1.0.0":
        raise ImageError(f"{path}: imageLayoutVersion {layout.get('imageLayoutVersion')!r}")
    index = _json(path / "index.json", "index")
    manifests = [m for m in index.get("manifests", []) if isinstance(m, dict)]
    if tag is not None:
        chosen = [m for m in manifests if m.get("annotations", {}).get(REF_NAME) == tag]
        if not chosen:
            tags = sorted(
                str(m.get("annotations", {}).get(REF_NAME)) for m in manifests if "annotations" in m
            )
            raise ImageError(
                f"{path}: no image tagged {tag!r} (it has: {', '.join(tags) or 'none'})"
            )
    else:
        chosen = manifests
        if len(chosen) != 1:
            raise ImageError(f"{path}: holds {len(chosen)} images: name one as {path}:TAG")
    desc = chosen[0]
    if desc.get("mediaType") not in MANIFEST_TYPES:
        raise ImageError(
            f"{path}: {desc.get('mediaType')!r} is not an image manifest (a multi-platform index "
            "is not supported: save the image for this platform)"
        )
    image = RootfsImage(path=path, kind="oci", digest=str(desc.get("digest", "")))
    mpath = image.blob(image.digest)
    if not mpath.is_file():
        raise ImageError(f"{path}: manifest {image.digest} is missing from blobs/")
    if sha256_file(mpath) != image.digest:
        raise ImageError(f"{path}: manifest {image.digest} does not match its digest")
    manifest = _json(mpath, "manifest")
    cdesc = manifest.get("config", {})
    config = _json(image.blob(str(cdesc.get("digest", ""))), "image config").get("config") or {}
    for layer in manifest.get("layers", []):
        if not image.blob(str(layer.get("digest", ""))).is_file():
            raise ImageError(f"{path}: layer {layer.get('digest')} is missing from blobs/")
    return RootfsImage(
        path=path,
        kind="oci",
        digest=image.digest,
        config=_config(config),
        manifest=manifest,
    )


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _config(c: dict[str, Any]) -> ImageConfig:
    return ImageConfig(
        entrypoint=_strings(c.get("Entrypoint")),
        cmd=_strings(c.get("Cmd")),
        env=_strings(c.get("Env")),
        workdir=str(c["WorkingDir"]) if c.get("WorkingDir") else None,
        user=str(c["User"]) if c.get("User") else None,
    )


# ------------------------------------------------------------------ files inside


def _open_tar(data: io.BufferedIOBase | io.BytesIO, what: str) -> tarfile.TarFile:
    head = data.read(4)
    data.seek(0)
    if head == ZSTD_MAGIC:
        raise ImageError(f"{what}: zstd-compressed: its files cannot be read here")
    if head[:2] == b"\x1f\x8b":
        return tarfile.open(fileobj=gzip.GzipFile(fileobj=data), mode="r|")
    return tarfile.open(fileobj=data, mode="r|")


def _norm(name: str) -> str:
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def read_files(image: RootfsImage, wanted: tuple[str, ...]) -> dict[str, bytes]:
    """The contents of `wanted` (paths like `etc/passwd`) in the image's final file system:
    later layers replace earlier ones, and whiteouts delete. Missing ones are left out."""
    found: dict[str, bytes] = {}
    sources = (
        [image.path]
        if image.kind == "tar"
        else [image.blob(str(layer.get("digest", ""))) for layer in image.layers()]
    )
    for source in sources:
        with source.open("rb") as raw:
            try:
                tar = _open_tar(raw, str(source))
                for member in tar:
                    name = _norm(member.name)
                    parent, _, base = name.rpartition("/")
                    if base.startswith(".wh."):
                        gone = f"{parent}/{base[4:]}".lstrip("/")
                        for w in wanted:
                            if (
                                w == gone
                                or w.startswith(gone + "/")
                                or (base == ".wh..wh..opq" and w.startswith(parent + "/"))
                            ):
                                found.pop(w, None)
                        continue
                    if name in wanted and member.isfile():
                        f = tar.extractfile(member)
                        if f is not None:
                            found[name] = f.read(1 << 20)
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise ImageError(f"{source}: not a readable tar archive: {exc}") from None
    return found


# ------------------------------------------------------------------ sending it to a site


def upload_chunks(image: RootfsImage) -> Iterator[bytes]:
    """What a site receives for `image`: a tarball as it is; a layout as a tar holding only this
    image's blobs and an index that tags it `UPLOAD_TAG`."""
    if image.kind == "tar":
        with image.path.open("rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk
        return
    yield from _layout_tar(image)


def _member(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


def _layout_tar(image: RootfsImage) -> Iterator[bytes]:
    """A tar written as it is read: one blob in memory at a time, never a whole layer."""
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [
            {
                "mediaType": MANIFEST_TYPES[0],
                "digest": image.digest,
                "size": image.blob(image.digest).stat().st_size,
                "annotations": {REF_NAME: UPLOAD_TAG},
            }
        ],
    }
    small = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps(index).encode(),
    }
    for name, data in small.items():
        yield _member(name, len(data)) + data + _padding(len(data))
    digests = [image.digest, str(image.manifest.get("config", {}).get("digest", ""))]
    digests += [str(layer.get("digest", "")) for layer in image.layers()]
    for digest in dict.fromkeys(digests):
        blob = image.blob(digest)
        size = blob.stat().st_size
        yield _member(f"blobs/sha256/{blob.name}", size)
        sent = 0
        with blob.open("rb") as f:
            while sent < size and (chunk := f.read(min(CHUNK, size - sent))):
                sent += len(chunk)
                yield chunk
        if sent != size:
            raise ImageError(f"{blob}: changed while it was sent")
        yield _padding(size)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)
