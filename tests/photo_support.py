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
