"""The agent's image endpoints: which images this site has, receive one, remove one.

`PUT /v1/images/{digest}?kind=tar|oci` takes the image's bytes as they come (not held in memory,
not under the 64 KiB body limit: at most MAX_IMAGE_BYTES), checks them against the digest and
unpacks them once (`agent.image_store`). A site that has the image answers at once and reads
nothing: a sender asks `GET /v1/images/{digest}` first, and a migration never sends an image
again to a site that has it.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from agent.errors import SiteRequestError
from agent.image_store import UPLOAD, ImageTooBig, check_digest
from agent.service import SiteService
from ground.rootfs_image import DIGEST_PATTERN, MAX_IMAGE_BYTES

Digest = Annotated[
    str,
    Path(
        pattern=DIGEST_PATTERN,
        max_length=71,
        description="the image's content address",
        examples=["sha256:" + "0" * 64],
    ),
]


KIND = "tar: a rootfs tarball as it is; oci: an OCI layout as a tar"


class UnknownImage(SiteRequestError):
    """This site does not have that image (404)."""

    status = 404


def image_router(s: SiteService) -> APIRouter:
    router = APIRouter()
    store = s.containers.image_store

    @router.get("/images")
    def images() -> dict[str, list[dict[str, Any]]]:
        """The images this site has, unpacked and ready."""
        return {"images": [asdict(i) for i in store.stored()]}

    @router.get("/images/{digest}", responses={404: {"description": "not at this site"}})
    def image(digest: Digest) -> dict[str, Any]:
        """One image this site has (404: send it with PUT)."""
        found = store.get(digest)
        if found is None:
            raise UnknownImage(f"site {s.name}: no image {digest}")
        return asdict(found)

    @router.put(
        "/images/{digest}",
        responses={
            400: {"description": "the bytes are not the image the digest names"},
            413: {"description": f"more than {MAX_IMAGE_BYTES} bytes"},
        },
    )
    async def put_image(
        digest: Digest,
        request: Request,
        kind: Annotated[
            Literal["tar", "oci"], Query(description="a rootfs tarball or an OCI layout as a tar")
        ],
    ) -> dict[str, Any]:
        """Receive, check and unpack an image (ground.rootfs_image.upload_chunks sends one)."""
        check_digest(digest)
        have = store.get(digest)
        if have is not None:
            return {**asdict(have), "received": False}
        work = await run_in_threadpool(store.incoming)
        try:
            size, h = 0, hashlib.sha256()
            with (work / UPLOAD).open("wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > MAX_IMAGE_BYTES:
                        raise ImageTooBig(f"an image has at most {MAX_IMAGE_BYTES} bytes")
                    h.update(chunk)
                    await run_in_threadpool(f.write, chunk)
            got = "sha256:" + h.hexdigest()
            stored = await run_in_threadpool(store.unpack, digest, kind, work, size, got)
        finally:
            await run_in_threadpool(shutil.rmtree, work, True)
        return {**asdict(stored), "received": True}

    @router.delete("/images/{digest}", responses={409: {"description": "an instance runs it"}})
    def remove_image(digest: Digest) -> dict[str, str]:
        """Remove an image no instance here uses (409 if one does)."""
        store.remove(digest, s.image_users(digest))
        return {"status": "absent"}

    return router
