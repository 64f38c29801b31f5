"""The widget in a real browser: headless Chromium from the OS packages,
driven by Playwright (no browser is downloaded). It opens the demo page a
newcomer lands on, chats, watches the reply stream in, reloads, and checks
that no message can inject markup. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import expect

from bench.cluster import free_port
from fakes.openai import Reply
from hub.app import build_app
from hub.conversations import post_staff_message, update_conversation
from hub.services import SERVICES, Services
from tests.helpers import ARTIFACTS, wait_for


@dataclass
class Site:
    url: str
    services: Services


@pytest.fixture
async def demo_site(fake, base_settings, tmp_path, aiohttp_client):
    """The hub with its demo, on a known port so the demo key allows the page's origin."""
    tmp_path.chmod(0o755)
    port = free_port()
    settings = base_settings.with_overrides(
        demo=True,
        data_dir=tmp_path,
        port=port,
        openai_api_key="sk-test",
        openai_base_url=fake.base_url,
    )
    client = await aiohttp_client(build_app(settings), server_kwargs={"port": port})
    return Site(f"http://127.0.0.1:{port}", client.app[SERVICES])


async def test_chat_streams_survives_a_reload_and_never_injects(demo_site, browser, fake):
    ARTIFACTS.mkdir(exist_ok=True)
    fake.then(
        Reply(
            text="Run **./scripts/serve** and open the page. It takes one command.",
            chunk_delay=0.08,
        )
    )
    fake.default = Reply(text="Noted.")
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(demo_site.url + "/")

    # Keyboard only: focus the launcher, open with Enter, type, send with Enter.
    launcher = page.get_by_role("button", name="Open chat")
    await launcher.focus()
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Syntera Guide")
    await expect(dialog).to_be_visible()
    await page.keyboard.type("How do I run Syntera?")
    await page.keyboard.press("Enter")

    log = page.get_by_role("log", name="Messages")
    await expect(log.locator(".msg.user")).to_have_text("You: How do I run Syntera?")
    # The reply streams: first a partial bubble, then the whole, rendered answer.
    await expect(log.locator(".msg.agent.streaming")).to_be_visible()
    await page.screenshot(path=str(ARTIFACTS / "widget-streaming.png"))
    reply = log.locator(".msg.agent").last
    await expect(reply).to_contain_text("It takes one command.")
    await expect(reply.locator("strong")).to_have_text("./scripts/serve")
    await expect(log.locator(".msg.agent.streaming")).to_have_count(0)
    await page.screenshot(path=str(ARTIFACTS / "widget-reply.png"))

    # A reload keeps the conversation: the history comes back without sending.
    await page.reload()
    await expect(page.locator(".msg.user")).to_have_text("You: How do I run Syntera?")
    await expect(page.locator(".msg.agent").last).to_contain_text("It takes one command.")

    # Markup in a message is text, never HTML.
    await page.get_by_role("button", name="Open chat").click()
    attack = "<img src=x onerror=window.__xss=1> and <script>window.__xss=2</script>"
    await page.get_by_role("textbox", name="Message").fill(attack)
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator(".msg.user").last).to_have_text("You: " + attack)
    assert await page.evaluate("window.__xss") is None
    assert await page.locator("[data-syntera-widget] >> img").count() == 0
    await expect(page.locator(".msg.agent").last).to_contain_text("Noted.")

    # Escape closes the dialog and gives the focus back to the launcher.
    await page.get_by_role("textbox", name="Message").focus()
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("dialog")).to_be_hidden()
    assert (
        await page.evaluate(
            "document.querySelector('[data-syntera-widget]').shadowRoot.activeElement.className"
        )
        == "launcher"
    )
    await page.screenshot(path=str(ARTIFACTS / "widget-closed.png"))
    assert errors == []


async def test_widget_on_a_phone_screen(demo_site, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = await browser.new_page(viewport={"width": 390, "height": 740})
    await page.goto(demo_site.url + "/")
    await page.get_by_role("button", name="Open chat").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    box = await dialog.bounding_box()
    assert box["width"] <= 390 and box["x"] >= 0
    await page.screenshot(path=str(ARTIFACTS / "widget-phone.png"))


async def _conversation_id(page) -> uuid.UUID:
    """The conversation the widget keeps in localStorage."""
    state = await page.evaluate(
        "Object.entries(localStorage).find(([k]) => k.startsWith('syntera:'))[1]"
    )
    return uuid.UUID(json.loads(state)["conversationId"])


async def _end(site: Site, conversation_id: uuid.UUID, *, unannounced: bool = False) -> None:
    """End a conversation as staff would; `unannounced`: without the event, as
    when the widget's socket was down when it ended."""
    db = site.services.db
    async with db.system() as conn:
        company_id = await conn.fetchval(
            "SELECT company_id FROM conversations WHERE id = $1", conversation_id
        )
    async with db.tenant(company_id) as conn:
        if unannounced:
            await conn.execute(
                "UPDATE conversations SET status = 'ended', ended_at = now() WHERE id = $1",
                conversation_id,
            )
        else:
            await update_conversation(
                db,
                conn,
                company_id=company_id,
                conversation_id=conversation_id,
                fields={"status": "ended"},
                by="staff",
            )


async def _send(page, text: str) -> None:
    await page.get_by_role("textbox", name="Message").fill(text)
    await page.get_by_role("button", name="Send").click()


async def test_after_a_conversation_ends_the_visitor_writes_in_a_new_one_and_rates(
    demo_site, browser, fake
):
    fake.default = Reply(text="Noted.")
    page = await browser.new_page()
    await page.goto(demo_site.url + "/")
    await page.get_by_role("button", name="Open chat").click()
    await _send(page, "First visit")
    await expect(page.locator(".msg.agent").last).to_contain_text("Noted.")
    first = await _conversation_id(page)

    # Staff end it while the visitor watches: the rating prompt comes up.
    await _end(demo_site, first)
    await expect(page.get_by_text("How did we do?")).to_be_visible()

    # The visitor leaves without rating and comes back: the history is there,
    # and writing again opens a new conversation instead of failing.
    await page.reload()
    await expect(page.locator(".msg.user")).to_have_text("You: First visit")
    await page.get_by_role("button", name="Open chat").click()
    await expect(page.get_by_role("status")).to_contain_text("This conversation has ended")
    await _send(page, "Back again")
    await expect(page.locator(".msg.user")).to_have_text("You: Back again")
    await expect(page.locator(".msg.agent").last).to_contain_text("Noted.")
    second = await _conversation_id(page)
    assert second != first

    # Ended while the widget did not hear of it: the refused send (CONFLICT)
    # is said again in a new conversation.
    await _end(demo_site, second, unannounced=True)
    await _send(page, "Third time")
    await expect(page.locator(".msg.user", has_text="Back again")).to_have_count(0)
    await expect(page.locator(".msg.user")).to_have_text("You: Third time")
    await expect(page.locator(".msg.agent").last).to_contain_text("Noted.")
    third = await _conversation_id(page)
    assert third not in (first, second)
    async with demo_site.services.db.system() as conn:
        said = await conn.fetch(
            "SELECT conversation_id, content FROM messages WHERE sender_type = 'user'"
            " AND conversation_id = ANY($1::uuid[]) ORDER BY created_at",
            [first, second, third],
        )
    assert [(r["conversation_id"], r["content"]) for r in said] == [
        (first, "First visit"),
        (second, "Back again"),
        (third, "Third time"),
    ]

    # The rating prompt at the end stores the visitor's rating.
    await _end(demo_site, third)
    await page.get_by_role("button", name="4 out of 5").click()
    await expect(page.get_by_text("Thank you!")).to_be_visible()
    async with demo_site.services.db.system() as conn:
        rating = await conn.fetchval(
            "SELECT rating FROM conversation_ratings WHERE conversation_id = $1", third
        )
    assert rating == 4
    await page.screenshot(path=str(ARTIFACTS / "widget-rated.png"))


async def test_theme_position_attachment_and_replay_after_a_dropped_connection(demo_site, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    # A site that embeds the widget dark, on the left (served at the demo's
    # origin, which the demo key allows).
    html = (await (await page.request.get(demo_site.url + "/")).text()).replace(
        "async></script>", 'data-theme="dark" data-position="bottom-left" async></script>'
    )
    await page.route(
        demo_site.url + "/site", lambda route: route.fulfill(body=html, content_type="text/html")
    )
    # Socket.IO's WebSockets pass through here, so the test can cut them.
    sockets, cut = [], {"on": False}

    def through(ws) -> None:
        if cut["on"]:
            ws.close()
            return
        ws.connect_to_server()
        sockets.append(ws)

    await page.route_web_socket(re.compile(r"/socket\.io/"), through)
    await page.goto(demo_site.url + "/site")
    launcher = page.get_by_role("button", name="Open chat")
    await expect(page.locator(".root")).to_have_class(re.compile(r"\bdark\b.*\bleft\b"))
    assert (await launcher.bounding_box())["x"] < 640
    await launcher.click()

    # The attachment button uploads a file and sends it as a message.
    await page.locator("input[type=file]").set_input_files(
        files=[{"name": "order.txt", "mimeType": "text/plain", "buffer": b"order A-1"}]
    )
    await expect(page.locator(".msg.user .file-link")).to_have_text("Attachment: order.txt")

    # The connection drops; a person writes meanwhile; on reconnect the widget
    # asks for what it missed and shows it.
    conversation_id = await _conversation_id(page)
    cut["on"] = True
    for ws in sockets:
        await ws.close()
    db = demo_site.services.db
    async with db.system() as conn:
        company_id, user_id = await conn.fetchrow(
            "SELECT c.company_id, u.id FROM conversations c JOIN users u USING (company_id)"
            " WHERE c.id = $1",
            conversation_id,
        )
    async with db.tenant(company_id) as conn:
        await post_staff_message(
            db,
            conn,
            company_id=company_id,
            conversation_id=conversation_id,
            user_id=user_id,
            content="Sent while you were away",
        )
    await page.wait_for_timeout(500)
    assert await page.locator(".msg.human").count() == 0  # it really was cut off
    cut["on"] = False
    await expect(page.locator(".msg.human")).to_have_text(
        "Team: Sent while you were away", timeout=15_000
    )
    assert len(sockets) >= 2  # a new connection brought it
    await page.screenshot(path=str(ARTIFACTS / "widget-dark-left.png"))


async def test_a_single_newline_is_a_soft_break_as_in_commonmark(demo_site, browser, fake):
    """A passage quoted from a hard-wrapped document reads as one paragraph;
    a blank line, a list, a quotation, a fence and a hard break keep their
    meaning, and markup in any of them stays text."""
    fake.then(
        Reply(
            text=(
                "The guide says:\n"
                "\n"
                "> Run the hub with one command\n"
                "> and open the page it prints.\n"
                "\n"
                "Then **scale it** when the\n"
                "traffic <b>grows</b>:\n"
                "- add web processes\n"
                "  behind a balancer\n"
                "- add workers\n"
                "\n"
                "```\n"
                "./scripts/serve\n"
                "PORT=9000 ./scripts/serve\n"
                "```\n"
                "Line one  \n"
                "line two\\\n"
                "line three"
            )
        )
    )
    page = await browser.new_page()
    await page.goto(demo_site.url + "/")
    await page.get_by_role("button", name="Open chat").click()
    await _send(page, "How do I run it?")
    reply = page.locator(".msg.agent .text").last
    await expect(reply.locator("pre")).to_have_count(1)

    quote = reply.locator("blockquote p")
    await expect(quote).to_have_count(1)
    await expect(quote).to_have_text("Run the hub with one command and open the page it prints.")
    # The blockquote, then "Then ... grows:", then the list; the fence; the hard breaks.
    paragraphs = reply.locator(":scope > p")
    await expect(paragraphs).to_have_count(3)
    await expect(paragraphs.nth(1)).to_have_text("Then scale it when the traffic <b>grows</b>:")
    await expect(paragraphs.nth(1).locator("strong")).to_have_text("scale it")
    await expect(paragraphs.nth(1).locator("b")).to_have_count(0)
    await expect(reply.locator("ul > li")).to_have_text(
        ["add web processes behind a balancer", "add workers"]
    )
    assert await reply.locator("pre code").text_content() == (
        "./scripts/serve\nPORT=9000 ./scripts/serve"
    )
    last = paragraphs.nth(2)
    await expect(last.locator("br")).to_have_count(2)
    assert await last.inner_text() == "Line one\nline two\nline three"
    await page.screenshot(path=str(ARTIFACTS / "widget-markdown.png"))


async def test_embedded_on_another_origin_that_declares_windows_1252(
    demo_site, browser, fake, aiohttp_server
):
    """A customer's page on another origin, served and declared as
    windows-1252: the widget's own text reads right, also when a proxy
    drops the charset of its files, and a chat works across origins."""
    fake.default = Reply(text="Noted.")
    shop = {}

    async def shop_page(request: web.Request) -> web.Response:
        body = (
            '<!doctype html><html><head><meta charset="windows-1252"><title>Café</title>'
            '<link rel="icon" href="data:,"></head><body><p>Crème brûlée</p>'
            f'<script src="{demo_site.url}/widget.js" data-agent-id="{shop["agent"]}"'
            f' data-key="{shop["key"]}" async></script></body></html>'
        )
        return web.Response(
            body=body.encode("windows-1252"),
            headers={"Content-Type": "text/html; charset=windows-1252"},
        )

    app = web.Application()
    app.router.add_get("/", shop_page)
    server = await aiohttp_server(app)
    origin = f"http://localhost:{server.port}"  # not the hub's origin: another host and port
    async with aiohttp.ClientSession(demo_site.url) as http:
        signup = await http.post(
            "/api/auth/signup",
            json={
                "email": f"shop-{uuid.uuid4().hex[:8]}@example.com",
                "password": "a long password",
                "company_name": "Café Shop",
            },
        )
        owner = {"Authorization": f"Bearer {(await signup.json())['access_token']}"}
        agent = await (await http.post("/api/agents", json={"name": "Shop"}, headers=owner)).json()
        key = await (
            await http.post(
                f"/api/agents/{agent['id']}/keys",
                json={"allowed_origins": [origin]},
                headers=owner,
            )
        ).json()
    shop.update(agent=agent["id"], key=key["key"])

    async def without_charset(route) -> None:
        """A proxy on the way that keeps only the media type."""
        response = await route.fetch()
        headers = dict(response.headers)
        headers["content-type"] = headers["content-type"].split(";")[0]
        await route.fulfill(response=response, headers=headers)

    errors: list[str] = []
    for proxied in (False, True):
        context = await browser.new_context()
        page = await context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        if proxied:
            await page.route(re.compile(r"/(widget\.js|static/widget\.css)$"), without_charset)
        await page.goto(origin + "/")
        assert await page.evaluate("document.characterSet") == "windows-1252"
        await expect(page.get_by_text("Crème brûlée")).to_be_visible()  # the page reads right

        await page.get_by_role("button", name="Open chat").click()
        await expect(page.get_by_role("dialog", name="Shop")).to_be_visible()
        close = page.locator("button.close")  # the launcher is also named "Close chat" now
        await expect(close).to_have_text("×")
        message = page.get_by_role("textbox", name="Message")
        assert await message.get_attribute("placeholder") == "Write a message…"
        assert await page.locator(".typing").text_content() == "Typing…"

        await _send(page, f"Hello from the shop, proxied={proxied}")
        await expect(page.locator(".msg.agent").last).to_contain_text("Noted.")
        await page.screenshot(path=str(ARTIFACTS / f"widget-windows-1252-{proxied}.png"))
        await close.click()
        await expect(page.get_by_role("dialog")).to_be_hidden()
        await context.close()
    assert errors == []

    # The conversations are the shop's, started from its page.
    db = demo_site.services.db
    async with db.system() as conn:
        pages = await conn.fetch(
            "SELECT c.metadata->>'page' AS page, m.content FROM conversations c"
            " JOIN messages m ON m.conversation_id = c.id"
            " WHERE c.agent_id = $1 AND m.sender_type = 'user' ORDER BY m.created_at",
            uuid.UUID(agent["id"]),
        )
    assert [(r["page"], r["content"]) for r in pages] == [
        (origin + "/", "Hello from the shop, proxied=False"),
        (origin + "/", "Hello from the shop, proxied=True"),
    ]


async def test_a_reply_taken_over_mid_stream_shows_once(demo_site, browser, fake):
    """A worker died while streaming a reply and another took the turn over:
    the visitor saw the first attempt's deltas, then the second attempt
    streams the same reply (same message id, index from 0 again, another
    `attempt`). One bubble, the second attempt's text, never both."""
    from agents_runtime.turns import REPLY_IDS
    from hub.events import Event

    fake.then(Reply(text="The whole answer, once.", delay=2.0, chunk_delay=0.5))
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(demo_site.url + "/")
    await page.get_by_role("button", name="Open chat").click()
    await page.get_by_role("textbox", name="Message").fill("Taken over?")
    await page.get_by_role("button", name="Send").click()
    log = page.get_by_role("log", name="Messages")
    await expect(log.locator(".msg.user")).to_have_text("You: Taken over?")

    async def stored():
        async with demo_site.services.db.system() as conn:
            return await conn.fetchrow(
                "SELECT id, company_id, conversation_id FROM messages WHERE content = 'Taken over?'"
            )

    question = await wait_for(stored, within=10, every=0.05)
    # What the worker that died had streamed before the model answers the second.
    for index, text in enumerate(["A half-streamed ", "first attempt"]):
        await demo_site.services.events.publish(
            Event(
                "message.delta",
                question["company_id"],
                {
                    "conversation_id": question["conversation_id"],
                    "message_id": uuid.uuid5(REPLY_IDS, str(question["id"])),  # as the turn's
                    "delta": text,
                    "index": index,
                    "attempt": "dead-worker",
                },
            )
        )
    streaming = log.locator(".msg.agent.streaming")
    await expect(streaming).to_contain_text("first attempt")
    # The second attempt replaces the first's text as it streams, not after it.
    await expect(streaming).to_contain_text("The whole")
    assert "first attempt" not in await streaming.text_content()
    reply_id = uuid.uuid5(REPLY_IDS, str(question["id"]))
    await expect(log.locator(f'[data-id="{reply_id}"]')).to_have_text(
        "Assistant: The whole answer, once."
    )
    await expect(log.locator('.msg.agent:not([data-id="greeting"])')).to_have_count(1)
    await expect(log.locator(".msg.agent.streaming")).to_have_count(0)
    assert errors == []
