"""Real, decodable media for the mock's answers, made with Pillow.

Images are solid-colour gradients whose colour follows a seed; encoding is cached per
(size, colour, format), so repeated answers cost a dictionary look-up.
"""

from __future__ import annotations

import base64
import functools
import io

from PIL import Image

#: Image formats the mock encodes, with their MIME types.
IMAGE_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_PALETTE = [(232, 119, 34), (46, 134, 193), (39, 174, 96), (142, 68, 173), (241, 196, 15), (192, 57, 43)]


@functools.lru_cache(maxsize=128)
def image_bytes(width: int, height: int, colour_index: int, fmt: str = "png") -> bytes:
    """A ``width`` x ``height`` px image in ``fmt`` (png, jpeg, webp): a vertical gradient.

    Raises KeyError for an unknown format.
    """
    if fmt not in IMAGE_MIME:
        raise KeyError(f"unknown image format {fmt!r}")
    top = _PALETTE[colour_index % len(_PALETTE)]
    column = Image.linear_gradient("L").resize((1, height))
    image = Image.new("RGB", (width, height), top)
    image.putalpha(column.resize((width, height)).point(lambda v: 255 - v // 2))
    if fmt == "jpeg":
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt.upper(), optimize=False)
    return buffer.getvalue()


def data_url(content: bytes, mime: str) -> str:
    """``data:<mime>;base64,<content>``."""
    return f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}"
