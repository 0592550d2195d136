"""Images built in the tests with Pillow: a phone-like JPEG with GPS and orientation EXIF, a PNG
with transparency, a decompression bomb; and a check that a JPEG carries no metadata."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

GPS_IFD = 0x8825
ORIENTATION = 0x0112
MAKE = 0x010F


def phone_jpeg(
    size: tuple[int, int] = (640, 480),
    orientation: int = 1,
    colour: tuple[int, int, int] = (200, 30, 30),
) -> bytes:
    """A JPEG as a phone writes it: EXIF with the camera, an orientation and a GPS position
    (31.2081 N, 121.4689 E: 田子坊), an XMP packet and a comment."""
    image = Image.new("RGB", size, colour)
    # A marker in the top-left corner so orientation can be checked.
    image.paste((0, 0, 255), (0, 0, size[0] // 4, size[1] // 4))
    exif = Image.Exif()
    exif[MAKE] = "PuhuiPhone"
    exif[ORIENTATION] = orientation
    gps = exif.get_ifd(GPS_IFD)
    gps[1] = "N"
    gps[2] = (31.0, 12.0, 29.16)
    gps[3] = "E"
    gps[4] = (121.0, 28.0, 8.04)
    out = io.BytesIO()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">GPS 31.2081 121.4689</x:xmpmeta>'
    image.save(out, "JPEG", exif=exif, xmp=xmp, comment=b"taken at Tianzifang", quality=90)
    return out.getvalue()


def alpha_png(size: tuple[int, int] = (300, 200)) -> bytes:
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    image.paste((0, 128, 0, 255), (0, 0, size[0] // 2, size[1]))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def bomb_png(side: int = 20_000) -> bytes:
    """A small, valid PNG (tens of KiB) that decodes to ``side``² pixels (greyscale, 8 bits:
    400 MB for the default side)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" * (side + 1)  # filter byte + one byte per pixel
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def metadata_of(jpeg: bytes) -> dict[str, object]:
    """What metadata a JPEG carries: EXIF tags, Pillow's info keys, and APP1/APP2/COM segments."""
    image = Image.open(io.BytesIO(jpeg))
    segments = []
    data = jpeg
    at = 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xDA:  # start of scan: the header is over
            break
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if marker in (0xE1, 0xE2, 0xED, 0xFE):  # EXIF/XMP, ICC, IPTC, comment
            segments.append(hex(marker))
        at += 2 + length
    return {
        "format": image.format,
        "exif": dict(image.getexif()),
        "info": sorted(
            k
            for k in image.info
            if k
            not in (
                "jfif",
                "jfif_version",
                "jfif_unit",
                "jfif_density",
                "progressive",
                "progression",
                "adobe",
                "adobe_transform",
                "dpi",
            )
        ),
        "segments": segments,
    }


def retention_and_erasure_scenario(engine: object, photo_dir: object) -> None:
    """Photos under retention, export and erasure, on whatever database ``engine`` is (the
    SQLite and PostgreSQL tests both run this): rows and files go together."""
    import os
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from infra.images import process_photo
    from infra.photos import (
        PhotoRow,
        PhotoStore,
        get_photo,
        insert_report_with_photos,
        new_photo_id,
        photos_of_reports,
        save_photo,
        sweep_orphans,
    )
    from infra.privacy import access_log, erase_expired, erase_volunteer, export_volunteer
    from models.contracts import ReportCategory, VolunteerReport

    assert isinstance(engine, Engine)
    store = PhotoStore(Path(str(photo_dir)))
    now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    processed = process_photo(phone_jpeg((400, 300)), max_pixels=10_000_000)

    def saved(owner: str, days_ago: float) -> str:
        row = save_photo(
            engine,
            store,
            processed,
            owner=owner,
            owner_role="volunteer",
            now=now - timedelta(days=days_ago),
        )
        return row.photo_id

    old, mid, new = saved("p_a", 300), saved("p_a", 10), saved("p_王", 3)
    report = VolunteerReport(
        report_id="r-mid",
        reporter_id="p_a",
        zone_id="tianzifang-taikang-210",
        category=ReportCategory.FIRE_LANE,
        description="消防通道堵了",
        submitted_at=now - timedelta(days=10),
    )
    assert insert_report_with_photos(engine, report, [mid])

    data = export_volunteer(engine, "p_a", "admin:test", now)
    assert [p["photo_id"] for p in data["photos"]] == [old, mid]
    assert data["photos"][1]["report_id"] == "r-mid"
    assert data["photos"][0]["sha256"] == processed.sha256
    assert access_log(engine)[-1].report_ids == ["r-mid", old, mid]

    def files(photo_id: str) -> list[bool]:
        return [p.exists() for p in store.paths(photo_id)]

    erased = erase_volunteer(engine, "p_王", "admin:test", now, photos=store)
    assert erased.photos == 1
    assert files(new) == [False, False] and get_photo(engine, new) is None
    expired = erase_expired(engine, now, days=180, photos=store)
    assert expired.photos == 1
    assert files(old) == [False, False] and get_photo(engine, old) is None
    assert files(mid) == [True, True] and get_photo(engine, mid) is not None
    assert photos_of_reports(engine, ["r-mid"]) == {"r-mid": [mid]}
    with Session(engine) as session:
        stub = session.get(PhotoRow, old)
        assert stub is not None
        assert (stub.owner, stub.sha256, stub.erased_at) == ("erased", None, now)
    assert erase_expired(engine, now, days=180, photos=store).photos == 0  # idempotent
    assert export_volunteer(engine, "p_王", "admin:test", now)["photos"] == []

    # Files with no row (a crash between the files and the row): removed once an hour old.
    orphan, fresh = new_photo_id(), new_photo_id()
    store.write(orphan, processed)
    store.write(fresh, processed)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=2)
    for path in store.paths(orphan):
        os.utime(path, (an_hour_ago.timestamp(), an_hour_ago.timestamp()))
    assert sweep_orphans(engine, store, datetime.now(UTC) - timedelta(hours=1)) == 1
    assert files(orphan) == [False, False]
    assert files(fresh) == [True, True] and files(mid) == [True, True]
