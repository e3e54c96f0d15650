import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.urls import add_query_params, is_http_url, normalize_url


@pytest.mark.parametrize(
    "variant",
    [
        "https://News.Example/en/news/42",
        "http://news.example/en/news/42",
        "https://news.example:443/en/news/42/",
        "https://news.example/en/news/42?utm_source=tg&utm_medium=social",
        "https://news.example/en/news/42?fbclid=abc#comments",
        "https://news.example//en/news//42",
        "https://news.example/en/news/%34%32",
    ],
)
def test_variants_share_one_identity(variant: str) -> None:
    assert normalize_url(variant) == "https://news.example/en/news/42"


def test_real_query_parameters_are_kept_and_sorted() -> None:
    assert normalize_url("https://n.example/a?id=5&lang=en&utm_campaign=x") == (
        "https://n.example/a?id=5&lang=en"
    )
    assert normalize_url("https://n.example/a?lang=en&id=5") == "https://n.example/a?id=5&lang=en"


def test_non_default_port_and_idna_host() -> None:
    assert normalize_url("http://127.0.0.1:8081/x/") == "https://127.0.0.1:8081/x"
    assert normalize_url("https://xəbər.az/1") == "https://xn--xbr-dtbb.az/1"


def test_cyrillic_path_is_stable() -> None:
    once = normalize_url("https://n.example/новости/1")
    assert normalize_url(once) == once


def test_non_http_is_rejected() -> None:
    with pytest.raises(ValueError):
        normalize_url("javascript:alert(1)")
    assert not is_http_url("ftp://x.example/a")
    assert is_http_url("https://x.example/a")


def test_add_query_params_replaces() -> None:
    url = add_query_params("https://n.example/a?utm_source=old&id=1", {"utm_source": "x"})
    assert url == "https://n.example/a?id=1&utm_source=x"


@given(
    path=st.lists(st.text(alphabet="abcxyzабвəğş0123-_", min_size=1, max_size=8), max_size=4),
    query=st.dictionaries(
        st.sampled_from(["id", "p", "utm_source", "fbclid", "lang"]), st.text(max_size=5)
    ),
)
def test_normalize_is_idempotent_and_drops_tracking(path: list[str], query: dict) -> None:
    url = add_query_params("https://n.example/" + "/".join(path), query)
    once = normalize_url(url)
    assert normalize_url(once) == once
    assert "utm_" not in once and "fbclid" not in once
