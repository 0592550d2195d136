"""The photo pipeline (infra/images.py) on images built here with Pillow: metadata never
survives, orientation is applied before it is dropped, transparency is flattened, sizes are
capped, and what is not a photo is refused before it is decoded."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from infra.images import (
    THUMBNAIL_EDGE,
    CorruptImage,
    TooManyPixels,
    UnsupportedImage,
    process_photo,
    sniff,
)

from photo_support import alpha_png, bomb_png, metadata_of, phone_jpeg

pytestmark = pytest.mark.unit

LIMIT = 50_000_000


def test_gps_exif_xmp_and_comment_are_gone_from_photo_and_thumbnail() -> None:
    source = phone_jpeg()
    assert metadata_of(source)["exif"]  # the test image does carry GPS
    photo = process_photo(source, max_pixels=LIMIT)
    for jpeg in (photo.jpeg, photo.thumbnail):
        assert metadata_of(jpeg) == {"format": "JPEG", "exif": {}, "info": [], "segments": []}
        assert b"31.2081" not in jpeg and b"PuhuiPhone" not in jpeg and b"Tianzifang" not in jpeg


def test_the_orientation_is_applied_before_the_exif_is_dropped() -> None:
    # Orientation 6: the camera held upright, the sensor's pixels lying on their side.
    photo = process_photo(phone_jpeg((640, 480), orientation=6), max_pixels=LIMIT)
    assert (photo.width, photo.height) == (480, 640)
    image = Image.open(io.BytesIO(photo.jpeg)).convert("RGB")
    # The blue marker, top-left in the sensor's frame, is top-right once turned 90° clockwise.
    r, _g, b = image.getpixel((photo.width - 10, 10))  # type: ignore[misc]
    assert b > 180 and r < 80
    r, _g, b = image.getpixel((10, 10))  # type: ignore[misc]
    assert r > 150 and b < 80


def test_a_png_with_transparency_becomes_a_jpeg_on_white() -> None:
    photo = process_photo(alpha_png((300, 200)), max_pixels=LIMIT)
    image = Image.open(io.BytesIO(photo.jpeg)).convert("RGB")
    assert image.format is None or image.mode == "RGB"
    assert photo.source_format == "PNG"
    assert all(c > 240 for c in image.getpixel((290, 100)))  # type: ignore[union-attr]
    r, g, b = image.getpixel((10, 100))  # type: ignore[misc]
    assert g > 100 and r < 40 and b < 40


def test_a_webp_is_taken() -> None:
    out = io.BytesIO()
    Image.new("RGB", (100, 80), (10, 200, 10)).save(out, "WEBP")
    photo = process_photo(out.getvalue(), max_pixels=LIMIT)
    assert (photo.source_format, photo.width, photo.height) == ("WEBP", 100, 80)


def test_large_photos_are_scaled_and_the_thumbnail_is_small() -> None:
    photo = process_photo(phone_jpeg((3000, 2000)), max_pixels=LIMIT, max_edge=1024)
    assert (photo.width, photo.height) == (1024, 683)
    assert max(photo.thumb_width, photo.thumb_height) == THUMBNAIL_EDGE
    assert (photo.source_width, photo.source_height) == (3000, 2000)
    assert len(photo.thumbnail) < len(photo.jpeg)
    assert len(photo.sha256) == 64


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_decompression_bomb_is_refused_from_its_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 89_478_485)  # Pillow's default
    bomb = bomb_png(10_000)  # 100 million pixels in ~100 KiB
    assert len(bomb) < 200_000
    with pytest.raises(TooManyPixels, match="10000×10000"):
        process_photo(bomb, max_pixels=LIMIT)


def test_pillows_own_bomb_guard_is_a_refusal_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # The API sets Image.MAX_IMAGE_PIXELS from PUHUI_PHOTO_MAX_PIXELS: past twice that, Pillow
    # raises in open(), before the explicit check.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    with pytest.raises(TooManyPixels, match="decompression bomb"):
        process_photo(bomb_png(2_000), max_pixels=LIMIT)


@pytest.mark.parametrize(
    "data",
    [
        b"GIF89a" + b"\0" * 100,
        b"%PDF-1.7\n",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"\0\0\0\x18ftypheic" + b"\0" * 64,
        b"",
    ],
    ids=["gif", "pdf", "svg", "heic", "empty"],
)
def test_other_types_are_unsupported(data: bytes) -> None:
    assert sniff(data) is None
    with pytest.raises(UnsupportedImage):
        process_photo(data, max_pixels=LIMIT)


@pytest.mark.parametrize("cut", [20, 200, 2000])
def test_a_truncated_or_garbled_jpeg_is_corrupt(cut: int) -> None:
    data = phone_jpeg()[:cut]
    with pytest.raises(CorruptImage):
        process_photo(data, max_pixels=LIMIT)


def test_a_png_signature_with_garbage_behind_it_is_corrupt() -> None:
    with pytest.raises(CorruptImage):
        process_photo(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50, max_pixels=LIMIT)
