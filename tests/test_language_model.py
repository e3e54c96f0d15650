"""bot/language_model.py: the compact form of py3langid's model answers exactly as py3langid's
own loader does, on real pages and on text built to reach odd corners of the DFA."""

from __future__ import annotations

import gzip
import os
import random
from pathlib import Path

import pytest
from py3langid.langid import MODEL_FILE, LanguageIdentifier

from bot.language_model import CompactIdentifier, load_compact

PAGES = (
    Path(
        os.environ.get("NEWSBOT_FIXTURES")
        or Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "article-pages"
    )
    / "html"
)
SENTENCES = [
    "The central bank kept its main rate unchanged on Thursday, citing slowing inflation.",
    "Центральный банк сохранил ключевую ставку без изменений, сославшись на инфляцию.",
    "Mərkəzi Bank uçot dərəcəsini dəyişməz saxladı, inflyasiyanın zəiflədiyini bildirdi.",
    "Merkez Bankası politika faizini sabit tuttu ve enflasyondaki yavaşlamaya dikkat çekti.",
    "O banco central manteve a taxa básica inalterada nesta quinta-feira.",
    "Die Zentralbank ließ den Leitzins am Donnerstag unverändert.",
    "中央銀行は木曜日、政策金利を据え置いた。インフレの減速を理由に挙げた。",
    "البنك المركزي أبقى على سعر الفائدة دون تغيير يوم الخميس",
    "ΚΕΝΤΡΙΚΗ ΤΡΑΠΕΖΑ: ΑΜΕΤΑΒΛΗΤΑ ΤΑ ΕΠΙΤΟΚΙΑ",
]


@pytest.fixture(scope="module")
def identifiers() -> tuple[LanguageIdentifier, LanguageIdentifier]:
    return load_compact(), LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def _texts() -> list[str | bytes]:
    rng = random.Random(18)
    texts: list[str | bytes] = ["", "a", " ", "\x00", *SENTENCES, " ".join(SENTENCES)]
    for _ in range(150):
        texts.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))))
        texts.append("".join(chr(rng.randrange(0x20, 0x3100)) for _ in range(rng.randrange(300))))
        mixed = rng.sample(SENTENCES, 3)
        texts.append(" ".join(s[: rng.randrange(len(s))] for s in mixed))
    for page in sorted(PAGES.glob("*.html*"))[:60]:
        raw = page.read_bytes()
        raw = gzip.decompress(raw) if page.suffix == ".gz" else raw
        texts.extend([raw[:3000], raw.decode("utf-8", "replace")[-3000:]])
    return texts


def test_the_compact_model_is_the_compact_form(
    identifiers: tuple[LanguageIdentifier, LanguageIdentifier],
) -> None:
    compact, stock = identifiers
    assert isinstance(compact, CompactIdentifier)
    # The shared blocks and their index replace the 9.8-million-entry transition table.
    assert len(compact.tk_nextmove) + len(compact._row_blocks) < len(stock.tk_nextmove) // 5
    assert compact.nb_classes == stock.nb_classes


def test_every_answer_is_py3langids(
    identifiers: tuple[LanguageIdentifier, LanguageIdentifier],
) -> None:
    compact, stock = identifiers
    texts = _texts()
    assert len(texts) > 400
    for text in texts:
        assert compact.classify(text) == stock.classify(text), text[:80]
    for text in texts[:80]:
        assert compact.rank(text) == stock.rank(text), text[:80]
