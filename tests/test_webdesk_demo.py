"""`newsbot demo` turns the web desk on: it prints the /desk URL with a demo account whose
password is made for this run, and that login opens the queue of the running demo."""

from __future__ import annotations

import asyncio
import io
import re

import httpx

from bot.demo.desk import DemoDesk
from bot.demo.runner import run_demo


async def test_demo_prints_a_desk_login_that_works() -> None:
    out = io.StringIO()
    done = asyncio.Event()
    demo = asyncio.create_task(run_demo(every=0.2, out=out, until=done.is_set, forever=True))
    try:
        line = None
        for _ in range(300):
            line = re.search(r"web desk: +(\S+)  \(user (\S+), password (\S+)\)", out.getvalue())
            if line or demo.done():
                break
            await asyncio.sleep(0.05)
        assert line, out.getvalue()
        url, user, password = line.groups()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/desk/")
        async with httpx.AsyncClient(timeout=10, follow_redirects=True) as client:
            form = (await client.get(f"{url}login")).text
            csrf = re.search(r'name="csrf" value="([^"]+)"', form)
            assert csrf
            wrong = await client.post(
                f"{url}login", data={"name": user, "password": "not-it", "csrf": csrf[1]}
            )
            assert wrong.status_code == 401
            form = (await client.get(f"{url}login")).text
            csrf = re.search(r'name="csrf" value="([^"]+)"', form)
            assert csrf
            queue = await client.post(
                f"{url}login", data={"name": user, "password": password, "csrf": csrf[1]}
            )
            assert queue.status_code == 200 and "<h1>Queue</h1>" in queue.text
            health = await client.get(f"{url}health")
            assert "telegram-en" in health.text and "Pause" in health.text  # an admin
    finally:
        done.set()
        await asyncio.wait_for(demo, timeout=30)
    # Another run gets another password: none is built in.
    assert DemoDesk().password != password
