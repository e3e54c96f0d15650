"""Image cards for posts that need a picture and have no usable article photo (Instagram's
posts, Threads' image posts, Bluesky's link-card thumbnails): the article photo cropped to 4:5,
or a brand background, with the headline, the outlet and the source line. Pure: bytes in, JPEG
bytes out. The font (Noto Sans) covers Latin, Cyrillic and Azerbaijani letters. Also
`image_mime`, an image's real type by its bytes. A private helper (the leading `_`): not a
platform."""

from __future__ import annotations

import hashlib
import io
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

# Pillow and the font are imported in the functions that use them: a process that never
# makes a card or reads an image's bytes does not load them.
if TYPE_CHECKING:
    from PIL import Image, ImageDraw, ImageFont

CARD_SIZE = (1080, 1350)  # 4:5: Instagram's tallest portrait, also fine on Threads and Bluesky
MARGIN = 72
#: Cards kept once drawn: the platforms posting one article in the same seconds share its card.
CARDS_KEPT = 6


def attribution_line(outlet_name: str, url: str) -> str:
    """The attribution as plain text, where a link cannot be clicked. A card carries the
    article's own address (no tracking parameters), the same on every platform, so one
    article's card is drawn once for all of them."""
    return f"Source: {outlet_name} — {url}"


def font_file() -> Path:
    import fontpkg_noto_sans

    return Path(fontpkg_noto_sans.__file__).parent / "files" / "NotoSans[wdth,wght].ttf"


@lru_cache(maxsize=32)
def font(size: int, weight: str = "Bold") -> ImageFont.FreeTypeFont:
    from PIL import ImageFont

    face = ImageFont.truetype(str(font_file()), size)
    face.set_variation_by_name(weight)
    return face


def _fitted_photo(photo: bytes | None) -> Image.Image | None:
    """The photo cropped to the card's 4:5, or None if there is none or it is not an image."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not photo:
        return None
    try:
        with Image.open(io.BytesIO(photo)) as image:
            image.load()
            return ImageOps.fit(image.convert("RGB"), CARD_SIZE, Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, OSError, ValueError):
        return None  # not a usable photo: the brand background instead


def _shade_start(height: int) -> int:
    return int(height * 0.35)


@lru_cache(maxsize=1)
def _shade_mask(height: int) -> Image.Image:
    """One column of the shade's opacity, top to bottom: clear above _shade_start, then
    darkening."""
    from PIL import Image

    start = _shade_start(height)
    column = Image.new("L", (1, height))
    column.putdata(
        [
            0 if y < start else min(220, int((y - start) / (height - start) * 260))
            for y in range(height)
        ]
    )
    return column


def _backdrop(photo: bytes | None, brand_color: str) -> Image.Image:
    """The card's background, the photo or the brand colour, with a dark gradient over the
    lower part so white text stays legible on any photo."""
    from PIL import Image

    width, height = CARD_SIZE
    mask = _shade_mask(height)
    picture = _fitted_photo(photo)
    if picture is None:
        # Every row of a flat background is one colour: shade one column, then widen it (a
        # whole-card blend is most of a card's CPU).
        column = Image.new("RGB", (1, height), brand_color)
        column.paste((0, 0, 0), (0, 0, 1, height), mask)
        return column.resize(CARD_SIZE, Image.Resampling.NEAREST)
    start = _shade_start(height)  # the rows above are left clear
    lower = mask.crop((0, start, 1, height)).resize(
        (width, height - start), Image.Resampling.NEAREST
    )
    picture.paste((0, 0, 0), (0, start, width, height), lower)
    return picture


def _wrap(
    draw: ImageDraw.ImageDraw, text: str, face: ImageFont.FreeTypeFont, width: int
) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if draw.textlength(candidate, font=face) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        while draw.textlength(word, font=face) > width:  # a word longer than a line
            cut = len(word)
            while cut > 1 and draw.textlength(word[:cut], font=face) > width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    return lines


def _fit_headline(
    draw: ImageDraw.ImageDraw, headline: str, width: int, max_height: int
) -> tuple[ImageFont.FreeTypeFont, list[str]]:
    """The largest size (down to a floor) at which the headline fits; ellipsis below that."""
    for size in range(84, 38, -6):
        face = font(size)
        lines = _wrap(draw, headline, face, width)
        if len(lines) * int(size * 1.22) <= max_height:
            return face, lines
    face = font(40)
    lines = _wrap(draw, headline, face, width)
    keep = max(1, max_height // int(40 * 1.22))
    if len(lines) > keep:
        lines = lines[:keep]
        while lines[-1] and draw.textlength(lines[-1] + "…", font=face) > width:
            lines[-1] = lines[-1][:-1]
        lines[-1] = lines[-1].rstrip() + "…"
    return face, lines


class _DrawnCards:
    """The last CARDS_KEPT cards by their inputs, safe across threads: a card asked for while
    another thread draws it is waited for, not drawn twice (Instagram, Threads and Bluesky
    each want one for the same article at the same moment; drawing is most of their CPU)."""

    def __init__(self, kept: int) -> None:
        self._kept = kept
        self._cards: OrderedDict[tuple[object, ...], Future[bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self.drawn = 0  # cards drawn, not taken from here (the tests watch it)

    def get(self, key: tuple[object, ...], draw: Callable[[], bytes]) -> bytes:
        with self._lock:
            card = self._cards.get(key)
            if card is not None:
                self._cards.move_to_end(key)
                waiting = True
            else:
                card = self._cards[key] = Future()
                while len(self._cards) > self._kept:
                    self._cards.popitem(last=False)
                self.drawn += 1
                waiting = False
        if waiting:
            return card.result()
        try:
            card.set_result(draw())
        except BaseException as error:
            with self._lock:  # not kept: the next caller draws it again
                if self._cards.get(key) is card:
                    del self._cards[key]
            card.set_exception(error)
            raise
        return card.result()


_drawn = _DrawnCards(CARDS_KEPT)


def render_card(
    headline: str,
    outlet_name: str,
    source_line: str,
    photo: bytes | None = None,
    brand_color: str = "#0b3d91",
) -> bytes:
    """A 1080x1350 JPEG card; drawn once for the same inputs (see _DrawnCards)."""
    headline = unicodedata.normalize("NFC", " ".join(headline.split()))
    key = (
        headline,
        outlet_name,
        source_line,
        hashlib.sha256(photo).digest() if photo else None,
        brand_color,
    )
    return _drawn.get(
        key, lambda: _draw_card(headline, outlet_name, source_line, photo, brand_color)
    )


def _draw_card(
    headline: str, outlet_name: str, source_line: str, photo: bytes | None, brand_color: str
) -> bytes:
    from PIL import ImageDraw

    card = _backdrop(photo, brand_color)
    draw = ImageDraw.Draw(card)
    width = CARD_SIZE[0] - 2 * MARGIN
    small = font(34, "SemiBold")
    draw.text((MARGIN, MARGIN), outlet_name.upper(), font=small, fill="white")
    source_y = CARD_SIZE[1] - MARGIN - 40
    face, lines = _fit_headline(draw, headline, width, int(CARD_SIZE[1] * 0.45))
    line_height = int(face.size * 1.22)
    y = source_y - 40 - line_height * len(lines)
    for line in lines:
        draw.text((MARGIN, y), line, font=face, fill="white")
        y += line_height
    source = source_line
    while source and draw.textlength(source, font=font(28, "Regular")) > width:
        source = source[:-2] + "…"
    draw.text((MARGIN, source_y), source, font=font(28, "Regular"), fill=(230, 230, 230))
    out = io.BytesIO()
    # No extra pass to optimise the Huffman tables: it doubled the encoding time (a third of
    # the card's) for a file about a tenth smaller, and every platform re-encodes the upload.
    card.save(out, "JPEG", quality=88)
    return out.getvalue()


def image_mime(data: bytes, accepted: Mapping[str, str]) -> str | None:
    """The image's real MIME type by its bytes (a CMS's Content-Type is often wrong), if
    Pillow reads it as one of `accepted` (Pillow format -> MIME type); else None."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return accepted.get(image.format or "")
    except (UnidentifiedImageError, OSError, ValueError):
        return None
