"""Photos: upload one (``POST /api/photos``), read it back (``GET /api/photos/{id}`` and
``/thumbnail``).

An upload is checked before it is decoded (the part's declared type, the size, the file's first
bytes, the pixel count in its header), then decoded and re-encoded by :mod:`infra.images` (EXIF
orientation applied, every piece of metadata — GPS above all — left behind) and stored by
:mod:`infra.photos` (files atomically, then the row).

Who may read a photo: its uploader and operators; anyone a rule registered on
:class:`PhotoAccess` lets in (``app.state.photo_access.allow(rule)``: the cases module lets the
responders of a case that references the photo in). Anyone else gets the same 404 as for a
photo that does not exist. Every read by someone other than the uploader is recorded in the
personal-data access log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, File, Path, UploadFile
from fastapi.responses import Response
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.auth import Caller, VolunteerCaller
from api.context import ApiContext
from api.errors import InvalidInput, NotFound, PayloadTooLarge, UnsupportedMediaType
from api.limits import TokenBucketLimiter
from api.schemas import error_responses
from infra.images import (
    CorruptImage,
    ImageRejected,
    ProcessedPhoto,
    UnsupportedImage,
    process_photo,
)
from infra.photos import PHOTO_ID_PATTERN, PhotoRow, PhotoStore, get_photo, save_photo
from infra.privacy import record_access
from infra.settings import Settings

__all__ = [
    "MULTIPART_OVERHEAD",
    "PhotoAccess",
    "PhotoCreated",
    "PhotoRule",
    "photo_links",
    "photos_router",
]

PHOTO_ID_EXAMPLE = "ph_5d41402abc4b2a76b9719d911017c592"

#: What a multipart body may carry beyond the file itself (boundaries, part headers).
MULTIPART_OVERHEAD = 64 * 1024

#: Declared part types let through to the signature check (phones and browsers vary; what the
#: file *is* is decided by its first bytes). Anything else is a 415 at once.
_DECLARED_OK = ("image/", "application/octet-stream")

#: Uploads per person: decoding is the expensive part of the API.
UPLOAD_BURST = 10
UPLOADS_PER_MINUTE = 20.0

PhotoRule = Callable[[Caller, PhotoRow], bool]
"""May this caller (not the uploader, not an operator) see this photo? Runs in a worker thread:
it may query the database."""


@dataclass
class PhotoAccess:
    """Who may read a photo: its uploader, operators, and whoever a registered rule admits."""

    rules: list[PhotoRule] = field(default_factory=list)

    def allow(self, rule: PhotoRule) -> None:
        """Admit the callers ``rule`` says yes to (e.g. responders of a case with the photo)."""
        self.rules.append(rule)

    def may_read(self, caller: Caller, photo: PhotoRow) -> bool:
        if photo.owner == caller.principal or caller.is_operator:
            return True
        return any(rule(caller, photo) for rule in self.rules)


class PhotoCreated(BaseModel):
    """The photo is stored; refer to it by ``photo_id`` (in a report's or a case's
    ``photo_ids``)."""

    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "photo_id": PHOTO_ID_EXAMPLE,
                    "url": f"/api/photos/{PHOTO_ID_EXAMPLE}",
                    "thumbnail_url": f"/api/photos/{PHOTO_ID_EXAMPLE}/thumbnail",
                    "width": 2048,
                    "height": 1536,
                }
            ]
        },
    )

    photo_id: str = Field(pattern=PHOTO_ID_PATTERN)
    url: str
    thumbnail_url: str
    width: int = Field(description="of the stored JPEG (scaled down to PUHUI_PHOTO_MAX_EDGE)")
    height: int


def photo_links(photo_id: str) -> dict[str, str]:
    """``photo_id``, ``url`` and ``thumbnail_url`` of a photo (as reports and cases show it)."""
    return {
        "photo_id": photo_id,
        "url": f"/api/photos/{photo_id}",
        "thumbnail_url": f"/api/photos/{photo_id}/thumbnail",
    }


PhotoId = Annotated[
    str, Path(pattern=PHOTO_ID_PATTERN, description="The photo's id", examples=[PHOTO_ID_EXAMPLE])
]

_JPEG_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
        "description": "The JPEG (no metadata); `Cache-Control: private, no-store`",
    }
}


def photos_router(ctx: ApiContext, access: PhotoAccess) -> APIRouter:
    """``/api/photos``. Sets Pillow's own bomb guard (``Image.MAX_IMAGE_PIXELS``, process-wide)
    to the configured pixel limit."""
    settings = ctx.settings
    store = PhotoStore(settings.resolved_photo_dir())
    Image.MAX_IMAGE_PIXELS = settings.photo_max_pixels
    limiter = TokenBucketLimiter(burst=UPLOAD_BURST, per_minute=UPLOADS_PER_MINUTE, now=ctx.now)
    router = APIRouter(tags=["photos"])

    @router.post(
        "/api/photos",
        status_code=201,
        summary="Upload a photo (volunteer, responder; operators too)",
        description="Multipart body with the field `file`: a JPEG, PNG or WebP image of at most "
        "`PUHUI_PHOTO_MAX_BYTES` bytes (413 over it) and `PUHUI_PHOTO_MAX_PIXELS` pixels (422 "
        "`too_many_pixels`, checked before decoding). Another type is a 415 (HEIC: phones "
        "convert to JPEG when a web page asks for a photo); a file that does not decode, a 422 "
        "`corrupt_image`. The photo is turned upright (EXIF orientation), converted to sRGB, "
        "scaled to `PUHUI_PHOTO_MAX_EDGE` and re-encoded as a JPEG with **no metadata** (no "
        "EXIF/GPS, XMP, comments or ICC profile), with a 320-pixel thumbnail. Visible to the "
        "uploader and operators (and responders of a case that refers to it). Limited to "
        f"{UPLOAD_BURST} uploads at once, {UPLOADS_PER_MINUTE:g} a minute per person (429).",
        response_model=PhotoCreated,
        responses=error_responses(401, 413, 415, 422),
    )
    async def upload(
        caller: VolunteerCaller,
        file: Annotated[UploadFile, File(description="The image (JPEG, PNG or WebP)")],
    ) -> PhotoCreated:
        data = await _read_upload(file, settings.photo_max_bytes)
        processed = await _processed(data, settings, limiter, caller.principal)
        row = await run_in_threadpool(
            save_photo,
            ctx.engine,
            store,
            processed,
            owner=caller.principal,
            owner_role=caller.role.value,
            now=ctx.now(),
        )
        return PhotoCreated(**photo_links(row.photo_id), width=row.width, height=row.height)

    @router.get(
        "/api/photos/{photo_id}",
        summary="A photo (JPEG, no metadata)",
        description="To its uploader, operators and responders of a case that refers to it; "
        "anyone else gets a 404, as for a photo that does not exist or was erased. An "
        "operator's (or responder's) read is recorded in the personal-data access log.",
        response_class=Response,
        responses={**_JPEG_RESPONSE, **error_responses(401, 404, 422)},
    )
    def photo(photo_id: PhotoId, caller: VolunteerCaller) -> Response:
        return _serve(ctx, store, access, photo_id, caller, thumbnail=False)

    @router.get(
        "/api/photos/{photo_id}/thumbnail",
        summary="A photo's thumbnail (JPEG, 320 pixels on the long edge)",
        description="Same access as the photo; reads recorded the same way.",
        response_class=Response,
        responses={**_JPEG_RESPONSE, **error_responses(401, 404, 422)},
    )
    def thumbnail(photo_id: PhotoId, caller: VolunteerCaller) -> Response:
        return _serve(ctx, store, access, photo_id, caller, thumbnail=True)

    return router


async def _read_upload(file: UploadFile, max_bytes: int) -> bytes:
    """The uploaded file's bytes, refused before decoding when its declared type is not an image
    (415), it is over ``max_bytes`` (413; no more than that is read) or it is empty (422)."""
    declared = (file.content_type or "").split(";", 1)[0].strip().lower()
    if declared and not declared.startswith(_DECLARED_OK):
        raise UnsupportedMediaType(
            f"file: {declared[:64]!r} is not an image: send a JPEG, PNG or WebP photo"
        )
    size = file.size
    if size is None or size > max_bytes:
        data = await file.read(max_bytes + 1)
        size = len(data)
    else:
        data = await file.read()
    if size > max_bytes:
        raise PayloadTooLarge(f"file: the photo is over the limit of {max_bytes} bytes")
    if not data:
        raise InvalidInput(("body", "file"), "the file is empty", "corrupt_image")
    return data


async def _processed(
    data: bytes, settings: Settings, limiter: TokenBucketLimiter, principal: str
) -> ProcessedPhoto:
    """Decode and re-encode (in a worker thread), against the uploader's rate limit; a rejected
    image gives its token back (415 for a type not taken, 422 otherwise)."""
    limiter.take(principal)
    try:
        return await run_in_threadpool(
            process_photo,
            data,
            max_pixels=settings.photo_max_pixels,
            max_edge=settings.photo_max_edge,
        )
    except UnsupportedImage as exc:
        limiter.give_back(principal)
        raise UnsupportedMediaType(
            f"file: {exc}" + (" (HEIC is not taken: choose JPEG)" if _looks_heic(data) else "")
        ) from None
    except (CorruptImage, ImageRejected) as exc:
        limiter.give_back(principal)
        raise InvalidInput(("body", "file"), str(exc), exc.reason) from None


def _serve(
    ctx: ApiContext,
    store: PhotoStore,
    access: PhotoAccess,
    photo_id: str,
    caller: Caller,
    thumbnail: bool,
) -> Response:
    """A photo or its thumbnail, to those ``access`` admits; a read by someone other than the
    uploader is recorded."""
    row = get_photo(ctx.engine, photo_id)
    if row is None or not access.may_read(caller, row):
        raise NotFound(f"no photo {photo_id}")
    data = store.read(photo_id, thumbnail=thumbnail)
    if data is None:  # erased meanwhile, or the files are gone: the same answer
        raise NotFound(f"no photo {photo_id}")
    if row.owner != caller.principal:
        path = f"/api/photos/{photo_id}" + ("/thumbnail" if thumbnail else "")
        ids = [photo_id] + ([row.report_id] if row.report_id else [])
        record_access(ctx.engine, caller.name, "read", f"GET {path}", ids, ctx.now())
    return Response(
        content=data,
        media_type="image/jpeg",
        headers={
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'inline; filename="{photo_id}.jpg"',
        },
    )


def _looks_heic(data: bytes) -> bool:
    return len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1")
