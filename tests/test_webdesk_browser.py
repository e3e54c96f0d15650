"""The web desk in a real browser: headless Debian chromium driven by selenium through
chromedriver (no browser download). Login, the queue, previews, an approval, an edit refused
for dropping the link, a schedule, history. Writes the README's screenshots to docs/ when asked
(NEWSBOT_DESK_SCREENSHOTS=1)."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.httpserver import LoopbackServer
from tests.webdesk_world import ARTICLE, EDITOR_PASSWORD, make_world

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
DOCS = Path(__file__).resolve().parent.parent / "docs"

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip(
        "chromium or chromedriver missing: apt-get install chromium chromium-driver "
        "(scripts/test.sh does this as root)",
        allow_module_level=True,
    )


def make_driver(width: int = 1280, height: int = 900):  # type: ignore[no-untyped-def]
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}", "--proxy-server=direct://",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def drive(base: str, shots: bool, x_id: int, fb_id: int) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = make_driver()

    def shows(locator: tuple[str, str], expected: str) -> None:
        """Wait for the next page (a click's navigation may still be under way)."""
        try:
            WebDriverWait(driver, 30).until(
                lambda d: any(expected in e.text for e in d.find_elements(*locator))
            )
        except Exception:
            seen = [e.text for e in driver.find_elements(*locator)]
            raise AssertionError(f"{expected!r} not shown in {locator}: {seen}") from None

    try:
        driver.get(f"{base}/desk/")
        assert driver.current_url.endswith("/desk/login")
        driver.find_element(By.ID, "name").send_keys("eve")
        driver.find_element(By.ID, "password").send_keys(EDITOR_PASSWORD)
        driver.find_element(By.ID, "login").click()
        shows((By.ID, "queue-rows"), "awaiting approval")
        assert "xmain" in driver.find_element(By.ID, "queue-rows").text
        if shots:
            driver.save_screenshot(str(DOCS / "desk-queue.png"))
        driver.find_element(By.LINK_TEXT, f"#{x_id}").click()  # the X post
        previews = driver.find_element(By.CLASS_NAME, "previews").text
        for limit in ("/ 1024", "/ 280", "/ 2200"):
            assert limit in previews
        for name in ("tg", "xmain", "ig"):  # photos load (Facebook shows the link card)
            image = driver.find_element(By.CSS_SELECTOR, f"#preview-{name} img")
            WebDriverWait(driver, 10).until(
                lambda d, img=image: d.execute_script(
                    "return arguments[0].complete && arguments[0].naturalWidth > 0", img
                )
            )
        link = driver.find_element(By.CSS_SELECTOR, "#preview-tg .bubble a")
        assert link.get_attribute("href") == ARTICLE.url
        if shots:
            driver.set_window_size(1280, 1500)
            driver.save_screenshot(str(DOCS / "desk-previews.png"))
        text = driver.find_element(By.ID, "text")
        text.clear()
        text.send_keys("Budget passed, without its link")
        driver.find_element(By.ID, "save").click()
        shows((By.ID, "notice"), "Not saved: the post must keep the link")
        driver.find_element(By.ID, "approve").click()
        shows((By.ID, "notice"), "posting now")
        # Another waiting post, scheduled for a time in the newsroom's zone (the browser's
        # datetime-local control is filled the way a picker fills it).
        driver.get(f"{base}/desk/item/{fb_id}")
        when = driver.find_element(By.ID, "at")
        driver.execute_script("arguments[0].value = '2030-01-02T09:30'", when)
        driver.find_element(By.ID, "schedule").click()
        shows((By.ID, "notice"), "scheduled for 2030-01-02 09:30")
        driver.find_element(By.LINK_TEXT, "History").click()
        shows((By.TAG_NAME, "main"), "approved by eve (id web:eve)")
        assert ARTICLE.title in driver.find_element(By.TAG_NAME, "main").text
        driver.find_element(By.LINK_TEXT, "Health").click()
        shows((By.ID, "target-tg"), "0 / 5")  # today's posts against the daily cap
    finally:
        driver.quit()


def image_site() -> Starlette:
    """The article's photo, served on loopback so the previews show a real image."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (1200, 630), (32, 96, 160)).save(buffer, "JPEG")
    photo = buffer.getvalue()

    async def serve(request: Request) -> Response:
        return Response(photo, media_type="image/jpeg")

    return Starlette(routes=[Route("/img/1.jpg", serve)])


async def test_editor_logs_in_previews_edits_approves_and_reads_history(tmp_path: Path) -> None:
    images = LoopbackServer(image_site())
    await images.start()
    article = replace(ARTICLE, image_url=f"{images.url}/img/1.jpg")
    world = await make_world(tmp_path, article=article)
    server = LoopbackServer(world.app)
    await server.start()
    try:
        shots = os.environ.get("NEWSBOT_DESK_SCREENSHOTS") == "1"
        ids = world.delivery_ids
        await asyncio.to_thread(drive, server.url, shots, ids["xmain"], ids["fb"])
    finally:
        await server.stop()
        await images.stop()
        await world.store.close()
    pending = [d for d in await _statuses(tmp_path) if d == "pending"]
    assert len(pending) == 2  # the approval and the schedule reached the store through the Desk


async def _statuses(tmp_path: Path) -> list[str]:
    from bot.store import Store

    store = Store(f"sqlite:///{tmp_path}/state.db")
    try:
        return [d.status for d in await store.queue(50)]
    finally:
        await store.close()
