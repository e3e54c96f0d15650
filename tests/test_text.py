from hypothesis import given
from hypothesis import strategies as st

from bot.text import ELLIPSIS, hashtag, hashtags, trim_text, utf16_len


def test_utf16_len_counts_surrogate_pairs_twice() -> None:
    assert utf16_len("abc") == 3
    assert utf16_len("😀") == 2
    assert utf16_len("Ə ğ ş") == 5
    assert utf16_len("Привет") == 6


def test_trim_prefers_sentence_boundary() -> None:
    text = "First sentence is here. Second sentence is much longer than the limit allows."
    assert trim_text(text, 40) == "First sentence is here."


def test_trim_cuts_at_word_boundary_with_ellipsis() -> None:
    text = "Alpha beta gamma delta epsilon zeta eta theta"
    result = trim_text(text, 20)
    assert result.endswith(ELLIPSIS)
    assert len(result) <= 20
    assert result[:-1] in text
    assert text[len(result) - 1] == " "  # the cut fell on a space


def test_trim_keeps_short_text() -> None:
    assert trim_text("short", 10) == "short"


def test_trim_single_long_word_is_cut_inside() -> None:
    result = trim_text("x" * 50, 10)
    assert result == "x" * 9 + ELLIPSIS


def test_trim_never_splits_surrogate_pairs_under_utf16() -> None:
    text = "😀" * 30
    result = trim_text(text, 11, utf16_len)
    assert utf16_len(result) <= 11
    result.encode("utf-8")  # would raise on a lone surrogate


@given(st.text(min_size=0, max_size=400), st.integers(min_value=0, max_value=300))
def test_trim_always_fits(text: str, limit: int) -> None:
    result = trim_text(text, limit, utf16_len)
    assert utf16_len(result) <= limit
    if utf16_len(text) <= limit:
        assert result == text


def test_hashtag_keeps_cyrillic_and_azerbaijani_letters() -> None:
    assert hashtag("Мировые новости") == "#МировыеНовости"
    assert hashtag("Xəbərlər") == "#Xəbərlər"
    assert hashtag("iqtisadiyyat və maliyyə") == "#IqtisadiyyatVəMaliyyə"


def test_hashtag_drops_punctuation_and_rejects_empty_or_numeric() -> None:
    assert hashtag("U.S. & World!") == "#USWorld"
    assert hashtag("!!!") is None
    assert hashtag("2025") is None


def test_hashtags_dedupe_case_insensitively_and_limit() -> None:
    assert hashtags(["World", "world", "Politics", "Economy"], limit=2) == ["#World", "#Politics"]


@given(st.text(max_size=60))
def test_hashtag_is_always_legal(label: str) -> None:
    tag = hashtag(label)
    if tag is not None:
        assert tag.startswith("#")
        body = tag[1:]
        assert body and all(ch.isalnum() or ch == "_" for ch in body)
        assert not body.isdigit()
