import regex
from hypothesis import example, given
from hypothesis import strategies as st

from adapters.bluesky import grapheme_count
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


# -- where the cut falls (issue #12: "cut only at a sentence or word boundary") ------------

WORDS = st.sampled_from(
    [
        "bridge",
        "reopens",
        "мост",
        "открыт",
        "körpü",
        "açıldı",
        "ponte",
        "Brücke",
        "ist",
        "naïve",
        "e\u0301te\u0301",
        "NATO",
        "COP29",
        "a",
        "I",
        "10\u00a0km",
    ]
)
CLUSTERS = st.sampled_from(
    [
        "a",
        "б",
        "ə",
        " ",
        ". ",
        "👩\u200d💻",
        "👨\u200d👩\u200d👧",
        "🇦🇿",
        "🇬🇧",
        "e\u0301",
        "\u0915\u094d\u0937",
        "👍🏽",
        "❤\ufe0f",
        "橋",
        "、",
        "。",
    ]
)
CJK_PIECES = st.sampled_from(
    [
        "橋",
        "が",
        "再",
        "開",
        "通",
        "東",
        "京",
        "経",
        "済",
        "、",
        "，",
        "。",
        "！",
        "）",
        "」",
        "(",
        "A",
    ]
)
MEASURES = st.sampled_from([len, utf16_len, grapheme_count])


def boundaries(text: str) -> set[int]:
    return {0, *(m.end() for m in regex.finditer(r"\X", text))}


@given(st.lists(WORDS, min_size=1, max_size=40), st.integers(1, 200), MEASURES)
def test_trim_never_cuts_a_word_unless_one_word_is_too_long(
    words: list[str], limit: int, measure
) -> None:
    text = " ".join(words)
    result = trim_text(text, limit, measure)
    assert measure(result) <= limit
    if result == text or not result:
        return
    stem = result.removesuffix(ELLIPSIS)
    assert text.startswith(stem)
    rest = text[len(stem) :]
    if " " in stem:
        # The cut fell between words: what follows is a space (a sentence end or a word).
        assert rest.startswith(" "), (text, result)
    else:
        # Inside the first word only when that word does not fit with the ellipsis.
        assert rest.startswith(" ") or measure(words[0] + ELLIPSIS) > limit, (text, result)


@given(st.lists(CLUSTERS, max_size=80), st.integers(0, 120), MEASURES)
def test_trim_never_splits_a_grapheme_nor_exceeds_the_limit(
    clusters: list[str], limit: int, measure
) -> None:
    text = "".join(clusters)
    result = trim_text(text, limit, measure)
    assert measure(result) <= limit
    stem = result.removesuffix(ELLIPSIS)
    assert text.startswith(stem)
    assert len(stem) in boundaries(text), (text, result)


@example(["橋", "、", "橋", "。", "、", "、", "、"], 4)  # mostly punctuation (found by hypothesis)
@example(["、", "、", "(", "。", "、"], 4)  # no letter at all (found by hypothesis)
@example(["橋", "、", "A", "A", "A"], 4)  # mostly Latin letters (found by hypothesis)
@example(["橋", "。", "A", "A", "A"], 4)  # a Latin word after a sentence (found by hypothesis)
@given(st.lists(CJK_PIECES, min_size=1, max_size=80), st.integers(4, 60))
def test_trim_prefers_punctuation_in_cjk(pieces: list[str], limit: int) -> None:
    text = "".join(pieces)
    result = trim_text(text, limit)
    assert len(result) <= limit
    if result == text:
        return
    stem = result.removesuffix(ELLIPSIS)
    assert text.startswith(stem)
    room = limit - 1  # what fits beside the ellipsis
    marks = "、，。！）」"
    if any(ch in marks for ch in text[room // 2 : room]):
        # A mark in the second half of the room: the cut is at it, not between two letters.
        assert stem[-1:] in tuple("。！）」") or text[len(stem)] in "、，", (text, result)


def test_trim_cjk_examples() -> None:
    text = "橋が再開通しました。工事は予定より三か月早く終わり、通勤客は喜んでいます。"
    assert trim_text(text, 12) == "橋が再開通しました。"
    assert trim_text(text[10:], 20) == "工事は予定より三か月早く終わり…"
    # No punctuation in reach: any character boundary, never inside a grapheme.
    assert trim_text("東京👨\u200d👩\u200d👧大阪名古屋", 4) == "東京…"


def test_trim_keeps_emoji_sequences_and_accents_whole() -> None:
    assert trim_text("👨\u200d👩\u200d👧" * 5, 10) == "👨\u200d👩\u200d👧…"
    assert trim_text("🇦🇿🇬🇧🇦🇿🇬🇧🇦🇿", 5) == "🇦🇿🇬🇧…"
    assert trim_text("e\u0301" * 20, 7) == "e\u0301" * 3 + ELLIPSIS


def test_trim_does_not_break_at_a_no_break_space() -> None:
    assert trim_text("The storm brings gusts of 110\u00a0km/h tonight", 32) == (
        "The storm brings gusts of…"
    )


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
