"""The Telegram stand-in must be as strict as Telegram, or the other tests prove little."""

from __future__ import annotations

import pytest
import telegram
from telegram.error import BadRequest, InvalidToken, RetryAfter

from standins import telegram as tg
from standins.server import serve


@pytest.mark.parametrize(
    ("source", "text", "entities"),
    [
        ("<b>bold</b> plain", "bold plain", [{"type": "bold", "offset": 0, "length": 4}]),
        ("😀 <i>ə</i>", "😀 ə", [{"type": "italic", "offset": 3, "length": 1}]),
        ("a &amp; b &lt;c&gt; &#1046; &quot;", 'a & b <c> Ж "', []),
        ("Tom & Jerry", "Tom & Jerry", []),
        (
            '<a href="https://n.example/a?x=1&amp;y=2">link</a>',
            "link",
            [{"type": "text_link", "url": "https://n.example/a?x=1&y=2", "offset": 0, "length": 4}],
        ),
    ],
)
def test_parse_html(source: str, text: str, entities: list[dict]) -> None:
    assert tg.parse_html(source) == (text, entities)


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("<script>x</script>", 'Unsupported start tag "script" at byte offset 0'),
        ("ə <b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("x <b", "Unclosed start tag at byte offset 2"),
        ('<a href="javascript:alert(1)">x</a>', "Wrong HTTP URL"),
    ],
)
def test_parse_html_rejects_like_telegram(source: str, error: str) -> None:
    with pytest.raises(tg.ParseError, match=error.replace("(", r"\(").replace(")", r"\)")):
        tg.parse_html(source)


def test_visible_length_counts_utf16_after_trimming() -> None:
    assert tg.visible_length("  😀ab \n") == 4


@pytest.fixture
async def bot_and_state():
    state = tg.State(per_chat_burst=2, per_chat_interval=60)
    state.valid_tokens.add("1:good")
    state.add_channel("@news")
    state.add_chat("@forum", "supergroup", is_forum=True, topics=(7,))
    async with (
        serve(tg.create_app(state)) as server,
        telegram.Bot("1:good", base_url=f"{server.url}/bot") as bot,
    ):
        yield bot, state, server.url


async def test_real_client_round_trip_and_limits(bot_and_state) -> None:
    bot, state, _ = bot_and_state
    message = await bot.send_message("@news", "<b>Hi</b> ə", parse_mode="HTML")
    assert message.text == "Hi ə" and message.entities[0].type == "bold"
    assert message.chat.username == "news"
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message("@news", "x" * 4097)
    with pytest.raises(BadRequest, match=r"(?i)message caption is too long"):
        await bot.send_photo("@news", b"\xff\xd8 not checked", caption="y" * 1025)
    with pytest.raises(BadRequest, match=r"(?i)Unsupported start tag"):
        await bot.send_message("@news", "<script>", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message("@nowhere", "x")
    assert len(state.in_chat("@news")) == 1


async def test_flood_control_answers_429_with_retry_after(bot_and_state) -> None:
    bot, state, _ = bot_and_state
    await bot.send_message("@news", "one")
    await bot.send_message("@news", "two")
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message("@news", "three")
    assert caught.value.retry_after.total_seconds() >= 1  # type: ignore[union-attr]
    assert [m["text"] for m in state.in_chat("@news")] == ["one", "two"]


async def test_forum_topics(bot_and_state) -> None:
    bot, _, _ = bot_and_state
    message = await bot.send_message("@forum", "in topic", message_thread_id=7)
    assert message.message_thread_id == 7
    with pytest.raises(BadRequest, match=r"(?i)message thread not found"):
        await bot.send_message("@forum", "x", message_thread_id=8)


async def test_an_edit_without_reply_markup_removes_the_inline_keyboard(bot_and_state) -> None:
    """As the real API does (sources in standins/telegram.py editMessageText)."""
    from telegram import InlineKeyboardButton, InlineKeyboardMarkup

    bot, state, _ = bot_and_state
    buttons = InlineKeyboardMarkup([[InlineKeyboardButton("Post now", callback_data="d:1:post")]])
    message = await bot.send_message("@news", "question", reply_markup=buttons)

    def keyboard() -> object:
        return next(m for m in state.in_chat("@news") if m["message_id"] == message.message_id)[
            "reply_markup"
        ]

    assert keyboard() is not None
    await bot.edit_message_text(
        "question (edited)", chat_id="@news", message_id=message.message_id, reply_markup=buttons
    )
    assert keyboard() is not None  # repeated: kept
    # The same text without the keyboard is a change (the markup differs), and removes it.
    await bot.edit_message_text("question (edited)", chat_id="@news", message_id=message.message_id)
    assert keyboard() is None
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text(
            "question (edited)", chat_id="@news", message_id=message.message_id
        )


async def test_edit_delete_and_updates(bot_and_state) -> None:
    bot, state, _ = bot_and_state
    message = await bot.send_message("@news", "first")
    edited = await bot.edit_message_text("second", chat_id="@news", message_id=message.message_id)
    assert edited.text == "second"
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text("second", chat_id="@news", message_id=message.message_id)
    assert await bot.delete_message("@news", message.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message("@news", message.message_id)
    state.push_update(
        {
            "callback_query": {
                "id": "q1",
                "from": {"id": 5, "is_bot": False, "first_name": "Ed"},
                "chat_instance": "c",
                "data": "post:1",
            }
        }
    )
    (update,) = await bot.get_updates(timeout=1)
    assert update.callback_query is not None and update.callback_query.data == "post:1"
    assert await bot.get_updates(offset=update.update_id + 1, timeout=0) == ()


async def test_bad_token_and_injected_faults(bot_and_state) -> None:
    bot, state, url = bot_and_state
    with pytest.raises(InvalidToken, match="rejected by the server"):
        await telegram.Bot("1:bad", base_url=f"{url}/bot").initialize()
    state.inject(tg.Fault(retry_after=9))
    with pytest.raises(RetryAfter):
        await bot.send_message("@news", "x")
    assert state.in_chat("@news") == []
