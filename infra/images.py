"""Volunteers' and responders' photos, made safe to keep and to show: decoded with Pillow,
turned upright (the EXIF orientation applied), and re-encoded as a fresh JPEG that carries no
metadata at all (no EXIF, so no GPS position, camera serial or time; no XMP, no comments, no
ICC profile: colours are converted to sRGB first), plus a small thumbnail.

Bytes in, bytes out: no files, no database. What a file may be is checked before anything is
decoded: its first bytes must say JPEG, PNG or WebP (:class:`UnsupportedImage` otherwise), its
header's width × height must be within ``max_pixels`` (:class:`TooManyPixels`, a decompression
bomb is refused before its pixels are decompressed), and a file that does not decode is
:class:`CorruptImage`.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Final

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

__all__ = [
    "CorruptImage",
    "ImageRejected",
    "ProcessedPhoto",
    "TooManyPixels",
    "UnsupportedImage",
    "process_photo",
    "sniff",
]

#: The formats accepted, by the first bytes of the file (not by what the client says).
SUPPORTED: Final = ("JPEG", "PNG", "WEBP")

#: Long edge of the stored photo and of the thumbnail, in pixels.
DEFAULT_MAX_EDGE: Final = 2048
THUMBNAIL_EDGE: Final = 320
PHOTO_QUALITY: Final = 85
THUMBNAIL_QUALITY: Final = 75


class ImageRejected(Exception):
    """Base: this file is not taken; ``reason`` is a short code, the message says why."""

    reason: str = "image_rejected"


class UnsupportedImage(ImageRejected):
    """Not a JPEG, PNG or WebP file (HTTP 415)."""

    reason = "unsupported_type"


class CorruptImage(ImageRejected):
    """Says it is an image but does not decode (HTTP 422)."""

    reason = "corrupt_image"


class TooManyPixels(ImageRejected):
    """Width × height over the limit: a decompression bomb or a panorama too large (HTTP 422)."""

    reason = "too_many_pixels"


@dataclass(frozen=True, slots=True)
class ProcessedPhoto:
    """The stored JPEG and its thumbnail, their sizes, and what came in."""

    jpeg: bytes
    thumbnail: bytes
    width: int
    height: int
    thumb_width: int
    thumb_height: int
    source_format: str
    source_bytes: int
    source_width: int
    source_height: int

    @property
    def sha256(self) -> str:
        """SHA-256 of the stored JPEG (hex)."""
        return hashlib.sha256(self.jpeg).hexdigest()


def sniff(data: bytes) -> str | None:
    """``JPEG``, ``PNG`` or ``WEBP`` from the file's signature; ``None`` for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


_SRGB: Final = ImageCms.createProfile("sRGB")


def _to_srgb(image: Image.Image) -> Image.Image:
    """Colours as the camera meant them, once the ICC profile is dropped."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        out_mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=out_mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # a broken profile: keep the pixels as they are
    return converted if converted is not None else image


def _flatten(image: Image.Image) -> Image.Image:
    """RGB on white: transparency (PNG, WebP) has no place in a JPEG."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda v: v / 256).convert("L")  # 16-bit grey to 8-bit
    return image.convert("RGB")


def _bare_jpeg(image: Image.Image, quality: int) -> bytes:
    # A new image from the raw pixels has an empty ``info``: nothing of the original's
    # metadata can ride along into the encoder.
    bare = Image.frombytes("RGB", image.size, image.tobytes())
    out = io.BytesIO()
    bare.save(out, "JPEG", quality=quality, optimize=True, progressive=True)
    return out.getvalue()


def process_photo(
    data: bytes, *, max_pixels: int, max_edge: int = DEFAULT_MAX_EDGE
) -> ProcessedPhoto:
    """Decode ``data`` (JPEG, PNG or WebP; the first frame of an animation), apply its EXIF
    orientation, convert to sRGB, flatten transparency on white, scale the long edge down to
    ``max_edge`` and re-encode as a metadata-free JPEG with a thumbnail.

    Raises :class:`UnsupportedImage`, :class:`TooManyPixels` or :class:`CorruptImage`.
    """
    kind = sniff(data)
    if kind is None:
        raise UnsupportedImage("not a JPEG, PNG or WebP image")
    try:
        # Pillow's own guard (Image.MAX_IMAGE_PIXELS, set from the settings by the API) raises
        # DecompressionBombError in open() past twice its limit; the explicit check below
        # refuses anything past ``max_pixels`` from the header, before a pixel is decoded.
        opened = Image.open(io.BytesIO(data), formats=[kind])
        width, height = opened.size
        if width * height > max_pixels:
            raise TooManyPixels(f"{width}×{height} pixels is more than the limit of {max_pixels}")
        opened.load()
        source_size = opened.size
        image: Image.Image = ImageOps.exif_transpose(opened)
        image = _flatten(_to_srgb(image))
        if max(image.size) > max_edge:
            image.thumbnail((max_edge, max_edge), Image.Resampling.LANCZOS)
        jpeg = _bare_jpeg(image, PHOTO_QUALITY)
        thumb = image.copy()
        thumb.thumbnail((THUMBNAIL_EDGE, THUMBNAIL_EDGE), Image.Resampling.LANCZOS)
        thumbnail = _bare_jpeg(thumb, THUMBNAIL_QUALITY)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooManyPixels(f"too many pixels ({exc})") from None
    except ImageRejected:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise CorruptImage(f"the {kind} image does not decode ({type(exc).__name__})") from None
    return ProcessedPhoto(
        jpeg=jpeg,
        thumbnail=thumbnail,
        width=image.width,
        height=image.height,
        thumb_width=thumb.width,
        thumb_height=thumb.height,
        source_format=kind,
        source_bytes=len(data),
        source_width=source_size[0],
        source_height=source_size[1],
    )
