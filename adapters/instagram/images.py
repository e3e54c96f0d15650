"""Instagram's rules for a published image (a photo that breaks them is replaced by a card
from adapters/_cards.py)."""

from __future__ import annotations

import io

MIN_RATIO, MAX_RATIO = 4 / 5, 1.91
MIN_WIDTH, MAX_WIDTH = 320, 1440
MAX_BYTES = 8 * 1024 * 1024


def check_instagram_image(data: bytes) -> list[str]:
    """Every way `data` breaks Instagram's image rules (empty: it is fine)."""
    # Pillow at the first image checked, not at start-up (as in adapters/_cards.py).
    from PIL import Image, UnidentifiedImageError

    problems = []
    if len(data) > MAX_BYTES:
        problems.append(f"{len(data)} bytes is over 8 MB")
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, (width, height) = image.format, image.size
    except (UnidentifiedImageError, OSError):
        return [*problems, "not an image"]
    if kind != "JPEG":
        problems.append(f"{kind} is not JPEG")
    ratio = width / height
    if not MIN_RATIO - 0.005 <= ratio <= MAX_RATIO + 0.005:
        problems.append(f"aspect ratio {ratio:.2f} is outside 4:5 to 1.91:1")
    if not MIN_WIDTH <= width <= MAX_WIDTH:
        problems.append(f"width {width} px is outside 320 to 1440")
    return problems
