"""Opening hostile and odd image files: each kind gets a reason or is read correctly."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from workbench.images import UnreadableImage, open_image, probe_image

pytestmark = pytest.mark.unit


def _jpeg(path, size=(64, 48), color=(200, 30, 30)):
    Image.new("RGB", size, color).save(path, "JPEG", quality=90)
    return path


def test_empty_file_is_unreadable_with_reason(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(UnreadableImage, match="empty file"):
        probe_image(p)


def test_text_named_jpg_is_not_an_image(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a photo\n" * 10)
    with pytest.raises(UnreadableImage, match="not an image"):
        probe_image(p)


def test_truncated_jpeg_is_unreadable(tmp_path):
    p = _jpeg(tmp_path / "full.jpg", size=(256, 256))
    data = p.read_bytes()
    t = tmp_path / "cut.jpg"
    t.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableImage, match="truncated|corrupt"):
        probe_image(t)


def test_corrupt_jpeg_body_is_unreadable(tmp_path):
    p = _jpeg(tmp_path / "ok.jpg", size=(128, 128))
    data = bytearray(p.read_bytes())
    data[20:400] = b"\x00" * 380  # wipe the quantisation/huffman tables
    c = tmp_path / "corrupt.jpg"
    c.write_bytes(bytes(data))
    with pytest.raises(UnreadableImage):
        probe_image(c)


def test_decompression_bomb_is_refused_without_decoding(tmp_path):
    # A valid PNG header claiming 20000 x 20000 pixels (400 MP > Pillow's limit).
    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    p = tmp_path / "bomb.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    with pytest.raises(UnreadableImage, match="decompression bomb"):
        probe_image(p)


@pytest.mark.parametrize("mode", ["CMYK", "P", "RGBA", "LA", "L"])
def test_odd_modes_open_as_rgb(tmp_path, mode):
    img = Image.new("RGB", (40, 30), (10, 120, 240)).convert(mode)
    p = tmp_path / f"odd_{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
    img.save(p)
    out = open_image(p)
    assert out.mode == "RGB" and out.size == (40, 30)
    assert probe_image(p).mode == mode


def test_16bit_grey_is_scaled_not_clipped(tmp_path):
    arr = np.full((20, 30), 40000, dtype=np.uint16)
    p = tmp_path / "sixteen.png"
    Image.fromarray(arr).save(p)
    out = np.asarray(open_image(p))
    assert out.shape == (20, 30, 3)
    # 40000 of 65535 keeps its brightness on 8 bits (not clipped to 255, not normalised)
    assert abs(int(out.max()) - round(40000 / 65535 * 255)) <= 1


def test_exif_orientation_swaps_width_and_height(tmp_path):
    img = Image.new("RGB", (80, 40), (0, 255, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    p = tmp_path / "rotated.jpg"
    img.save(p, exif=exif.tobytes())
    info = probe_image(p)
    assert (info.width, info.height) == (40, 80)
    assert open_image(p).size == (40, 80)
