"""X's weighted length (twitter-text v3), the count X enforces: 280 units, most scripts' letters
1 unit, CJK and emoji 2, a URL 23 whatever its length, after NFC normalisation and with CRLF
counted as one line break.

twitter-text's `parse_tweet` finds emoji with a very large regular expression run over the
whole text, which was most of the CPU of rendering a post for X: fitting a post measures it
a few dozen times. Text that cannot hold an emoji (every character in `_EMOJI_FREE`) is
counted here with the same weights and twitter-text's own URL extraction; anything else goes
to `parse_tweet`. tests/test_x.py checks the two agree on generated text.
"""

from __future__ import annotations

import re
import unicodedata

#: Characters no emoji starts with or contains (an emoji needs a pictograph, a regional
#: indicator, or a keycap's U+20E3 / U+FE0F): everything below U+2000 but the copyright and
#: registered signs, plus the punctuation and currency signs news text is full of (dashes,
#: quotes, bullets, ellipsis, per mille, primes, guillemets, the euro, manat and rouble).
_EMOJI_FREE = re.compile("[\x00-\xa8\xaa-\xad\xaf-\u1fff\u2010-\u2027\u2030-\u203a\u20a0-\u20c0]*")
#: Of those, the ones X weighs 2 units (its weight-100 ranges are U+0000-U+10FF,
#: U+2000-U+200D, U+2010-U+201F and U+2032-U+2037; everything else weighs 200).
_HEAVY = re.compile("[\u1100-\u1fff\u2020-\u2031\u2038-\u203a\u20a0-\u20c0]")
_LINE_ENDING = re.compile(r"\r\n|\r|\n")
URL_WEIGHT = 23


def weighted_length(text: str) -> int:
    """X's weighted length of `text`, in units (a post may have 280)."""
    # twitter-text is imported at the first render, not at start-up: its import loads
    # pkg_resources and an emoji table (~12 MB) that polling never needs.
    normalized = _LINE_ENDING.sub("\n", unicodedata.normalize("NFC", text))
    if _EMOJI_FREE.fullmatch(normalized) is None:  # NFC may compose, e.g. "=" + U+0338
        from twitter_text import parse_tweet

        return parse_tweet(text).weightedLength
    from twitter_text.extract_urls import extract_urls_with_indices

    units, start = 0, 0
    for url in extract_urls_with_indices(normalized):
        begin, end = url["indices"]
        units += _plain_units(normalized[start:begin]) + URL_WEIGHT
        start = end
    return units + _plain_units(normalized[start:])


def _plain_units(text: str) -> int:
    return len(text) + len(_HEAVY.findall(text))
