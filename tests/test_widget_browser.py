"""The widget in a real browser: headless Chromium from the OS packages,
driven by Playwright (no browser is downloaded). It opens the demo page a
newcomer lands on, chats, watches the reply stream in, reloads, and checks
that no message can inject markup. Screenshots go to test-artifacts/."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import expect

from hub.app import build_app
from tests.fake_openai import Reply
from tests.helpers import ARTIFACTS, free_port


@pytest.fixture
async def demo_site(fake, base_settings, tmp_path):
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
    client = TestClient(TestServer(build_app(settings), port=port))
    await client.start_server()
    yield f"http://127.0.0.1:{port}"
    await client.close()


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
    await page.goto(demo_site + "/")

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
    await page.goto(demo_site + "/")
    await page.get_by_role("button", name="Open chat").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    box = await dialog.bounding_box()
    assert box["width"] <= 390 and box["x"] >= 0
    await page.screenshot(path=str(ARTIFACTS / "widget-phone.png"))
