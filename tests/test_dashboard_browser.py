"""The staff dashboard at /app in a real browser (headless Chromium from the OS
packages, driven by Playwright): a newcomer signs up, creates an agent and its
key, uploads a document and watches it get processed, then a visitor chats
through the widget on another site while the inbox shows it live; staff take
over, reply and hand back; analytics draw the new data. Workflows are built in
the editor, dry-run with their trace and fired by a visitor. Stored markup
stays text everywhere. A screenshot of each page goes to test-artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Page, expect

from fakes.openai import Reply
from hub.workflows import signature
from tests.helpers import ARTIFACTS

ATTACK = "<img src=x onerror=window.__xss=1>"
AGENT = f"Support {ATTACK}"
POLICY = (
    "# Refunds\n\nOur refund policy: customers get their money back within 30 days of "
    "purchase, no questions asked. Refunds reach the card in five business days.\n"
)


@pytest.fixture
async def hub(fake, make_client):
    client = await make_client(openai_api_key="sk-test", openai_base_url=fake.base_url)
    return str(client.make_url("")).rstrip("/")


@pytest.fixture
async def shop(aiohttp_server):
    """Another website (another origin) that embeds the widget with the
    snippet the dashboard gave: `shop.html` is filled in by the test."""
    site = {"html": "<!doctype html><title>Shop</title>"}

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=site["html"], content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    server = await aiohttp_server(app)
    site["origin"] = str(server.make_url("")).rstrip("/")
    return site


def watch(page: Page) -> list[str]:
    """Collects uncaught errors and console errors (CSP violations among them)."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"pageerror: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    return problems


async def no_markup_ran(page: Page) -> None:
    assert await page.evaluate("window.__xss") is None
    assert await page.locator("main img").count() == 0


async def expect_bell(page: Page, *types: str) -> None:
    """The bell counts what the API counts as unread, with these types among them."""
    unread = """async () => {
        const {access_token} = JSON.parse(localStorage.getItem("syntera:dashboard:session"));
        const headers = {Authorization: `Bearer ${access_token}`};
        const list = await (await fetch("/api/notifications?read=false&limit=100", {headers})).json();
        return list.notifications.map((n) => n.type);
    }"""
    for _ in range(100):
        kinds = await page.evaluate(unread)
        if set(types) <= set(kinds):
            bell = page.get_by_role("button", name=f"Notifications, {len(kinds)} unread")
            if await bell.count():
                return
        await page.wait_for_timeout(100)
    raise AssertionError(f"the bell does not show the unread {kinds}")


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


async def test_dashboard_end_to_end(hub, shop, browser, fake):
    ARTIFACTS.mkdir(exist_ok=True)
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=hub)
    staff = await context.new_page()
    problems = watch(staff)

    # ---- sign up (keyboard only) ----
    await staff.goto(hub + "/app")
    await expect(staff.get_by_role("heading", name="Log in to your dashboard")).to_be_visible()
    await staff.get_by_role("link", name="Create an account").click()
    await staff.get_by_label("Your name").fill("Ana")
    await staff.get_by_label("Company").fill("Acme Shop")
    await staff.get_by_label("Email").fill("ana@acme.example")
    await staff.get_by_label("Password").fill("a long password")
    await staff.keyboard.press("Enter")
    await expect(staff.get_by_role("heading", name="Inbox", level=1)).to_be_visible()
    await expect(staff.get_by_role("status").filter(has_text="Live")).to_be_visible()

    # ---- an agent, its key and the embed snippet ----
    await staff.get_by_role("link", name="Agents").click()
    await staff.get_by_role("link", name="New agent").click()
    await staff.get_by_label("Name", exact=True).fill(AGENT)
    await staff.get_by_label("Temperature").fill("0.3")
    await staff.get_by_label("System prompt").fill("You are Acme's support. Be brief.")
    await staff.get_by_label("Greeting").fill("Hi! Ask me about refunds.")
    await staff.get_by_label("Voice", exact=True).fill("alloy")
    await staff.get_by_label("Hand the conversation to a person").check()
    await staff.get_by_role("button", name="Create agent").click()
    await expect(staff.get_by_role("heading", name=AGENT, level=2)).to_be_visible()
    await expect(staff).to_have_url(re.compile(r"#/agents/[0-9a-f-]{36}$"))
    agent_id = staff.url.rsplit("/", 1)[1]

    await staff.get_by_label("Allowed origins, one per line").fill(shop["origin"])
    await staff.get_by_role("button", name="Create key").click()
    snippet = await staff.get_by_label("Embed snippet").input_value()
    assert f'data-agent-id="{agent_id}"' in snippet and 'data-key="pk_' in snippet
    await staff.get_by_role("button", name="Copy snippet").click()
    await expect(staff.get_by_text("Copied to the clipboard.")).to_be_visible()
    assert await staff.evaluate("navigator.clipboard.readText()") == snippet
    await expect(staff.get_by_role("cell", name=shop["origin"])).to_be_visible()
    shop["html"] = (
        f'<!doctype html><title>Shop</title><link rel="icon" href="data:,"><h1>Acme Shop</h1>{snippet}'
    )
    await no_markup_ran(staff)

    # ---- a document: upload, processed live, searched ----
    await staff.get_by_role("link", name="Knowledge base").click()
    await staff.get_by_label("File (PDF, DOCX, Markdown, HTML or text)").set_input_files(
        {"name": "refunds.md", "mimeType": "text/markdown", "buffer": POLICY.encode()}
    )
    await staff.get_by_label("Title").fill("Refund policy")
    await staff.get_by_role("button", name="Upload").click()
    row = staff.get_by_role("row").filter(has_text="Refund policy")
    await expect(row.get_by_text("Processed")).to_be_visible(timeout=30_000)
    # The processed document notified the owner: the bell counts it, live.
    await expect_bell(staff, "document_processed")
    await staff.get_by_label("Question").fill("how long do refunds take")
    await staff.get_by_role("button", name="Search", exact=True).click()
    result = staff.locator(".result").first
    await expect(result).to_contain_text("refund policy")
    await expect(result.locator(".score")).to_have_text(re.compile(r"score \d\.\d{4}"))
    await expect(result.locator(".badge-pill")).to_have_text("hybrid")
    await shot(staff, "knowledge")
    # A text holding a NUL past what its type is told from: read without it, and said.
    await staff.get_by_label("File (PDF, DOCX, Markdown, HTML or text)").set_input_files(
        {
            "name": "hut.txt",
            "mimeType": "text/plain",
            "buffer": b"Warm soup at the hut. " * 3000 + b"Open\x00 all winter.",
        }
    )
    await staff.get_by_label("Title").fill("Hut notes")
    await staff.get_by_role("button", name="Upload").click()
    row = staff.get_by_role("row").filter(has_text="Hut notes")
    await expect(row.get_by_text("Processed")).to_be_visible(timeout=30_000)
    await expect(row.locator(".notice")).to_contain_text("Removed 1 character")

    # ---- a visitor chats on the shop's site; the inbox shows it live ----
    await staff.get_by_role("link", name="Inbox").click()
    await expect(staff.get_by_text("No conversations here yet.")).to_be_visible()
    visitor = await context.new_page()
    visitor_problems = watch(visitor)
    await visitor.goto(shop["origin"] + "/")
    fake.then(Reply(text="Refunds are paid within 30 days of purchase.", chunk_delay=0.05))
    await visitor.get_by_role("button", name="Open chat").click()
    await visitor.get_by_role("textbox", name="Message").fill("What is your refund policy?")
    await visitor.keyboard.press("Enter")

    conversation = staff.locator(".conversation-list a").first
    await expect(conversation).to_contain_text(AGENT + " · chat")
    await expect(conversation).to_contain_text("New")
    await conversation.click()
    transcript = staff.get_by_role("log", name="Transcript")
    await expect(transcript.locator(".msg.user")).to_contain_text("What is your refund policy?")
    answer = transcript.locator(".msg.agent").last
    await expect(answer).to_contain_text("Refunds are paid within 30 days of purchase.")
    await expect(answer.locator(".sources")).to_contain_text("refunds.md")
    await expect(answer).to_contain_text("gpt-4o-mini")

    # The next reply streams into the open transcript.
    fake.then(Reply(text="Five business days to reach your card. " * 3, chunk_delay=0.15))
    await visitor.get_by_role("textbox", name="Message").fill("And to my card?")
    await visitor.keyboard.press("Enter")
    await expect(transcript.locator(".msg.agent.streaming")).to_be_visible()
    await shot(staff, "inbox-streaming")
    await expect(transcript.locator(".msg.agent.streaming")).to_have_count(0)
    await expect(transcript.locator(".msg.agent").last).to_contain_text("reach your card")

    # ---- take over, reply, hand back ----
    await staff.get_by_role("button", name="Take over").click()
    await expect(staff.get_by_text("You have taken over")).to_be_visible()
    widget = visitor.get_by_role("dialog")
    await expect(widget).to_contain_text("A person from our team has joined.")
    await staff.get_by_label("Reply as staff").fill("Hi, I'm Ana from Acme. Anything else?")
    await staff.keyboard.press("Enter")
    await expect(transcript.locator(".msg.human")).to_contain_text("I'm Ana from Acme")
    await expect(visitor.locator(".msg.human")).to_contain_text("Hi, I'm Ana from Acme.")

    # Markup a visitor sends is shown as text.
    requests_before = len(fake.requests)
    await visitor.get_by_role("textbox", name="Message").fill(ATTACK)
    await visitor.keyboard.press("Enter")
    await expect(transcript.locator(".msg.user").last).to_have_text(re.compile(re.escape(ATTACK)))
    await no_markup_ran(staff)
    assert len(fake.requests) == requests_before  # taken over: the AI stayed silent
    await shot(staff, "inbox")

    await staff.get_by_role("button", name="Hand back to AI").click()
    await expect(widget).to_contain_text("You are talking with our assistant again.")
    await expect(staff.get_by_role("button", name="Take over")).to_be_visible()

    # ---- analytics draw today's conversation ----
    await staff.get_by_role("link", name="Analytics").click()
    timeline = staff.locator('[data-chart="timeline"] rect.bar[data-value="1"]')
    await expect(timeline).to_have_count(1)
    await expect(
        staff.locator('[data-chart="channels"] rect[data-label="chat"]')
    ).to_have_attribute("data-value", "1")
    for chart, label in (("cost-model", "gpt-4o-mini"), ("response-time", AGENT)):
        bar = staff.locator(f'[data-chart="{chart}"] rect[data-label="{label}"]')
        assert float(await bar.get_attribute("data-value")) > 0, chart
    await expect(staff.locator('[data-chart="cost-agent"] svg')).to_contain_text("Support <img")
    await expect(staff.locator(".kpi").first).to_contain_text("1")
    await no_markup_ran(staff)
    await shot(staff, "analytics")

    # ---- a call the AI hands to a person: waiting, live; its transcript is what was said ----
    await staff.get_by_role("link", name="Inbox").click()
    await staff.get_by_label("Show").select_option(label="Waiting for a person")
    await expect(staff.get_by_text("No conversations here yet.")).to_be_visible()
    fake.then(
        Reply(tool_calls=[{"name": "handoff_to_human", "arguments": {"reason": "Wants a person"}}]),
        Reply(text="A colleague will be with you shortly."),
    )
    key = re.search(r'data-key="(pk_[^"]+)"', snippet).group(1)
    public = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(hub) as http:
        async with http.post(
            "/public/conversations", json={"agent_id": agent_id, "channel": "voice"}, headers=public
        ) as response:
            call = await response.json()
        async with http.post(
            f"/public/conversations/{call['id']}/messages",
            json={"content": "I would like to talk to a person"},
            headers={**public, "X-Conversation-Token": call["token"]},
        ) as response:
            assert response.status == 201, await response.text()
    waiting = staff.locator(f'.conversation-list a[data-id="{call["id"]}"]')
    await expect(waiting).to_contain_text("Waiting for a person")
    await expect_bell(staff, "document_processed", "handoff_requested")
    await waiting.click()
    await expect(staff.get_by_role("heading", name=re.compile("^Call transcript"))).to_be_visible()
    spoken = staff.get_by_role("log", name="Transcript")
    await expect(spoken.locator(".msg.user")).to_contain_text("Visitor said")
    await expect(spoken.locator(".msg.tool")).to_contain_text("Tool handoff_to_human")
    await expect(spoken.locator(".msg.agent")).to_contain_text("AI said")
    await staff.get_by_role("button", name="Take over").click()
    # Taken: no longer waiting, so it leaves this list.
    await expect(waiting).to_have_count(0)
    await expect(staff.get_by_text("No conversations here yet.")).to_be_visible()

    # ---- the agent's test chat, through the public API with a key ----
    await staff.get_by_role("link", name="Agents").click()
    await staff.get_by_role("navigation", name="Agents").get_by_role("link", name=AGENT).click()
    fake.then(Reply(text="This is the test chat answering."))
    await staff.get_by_role("button", name="Start a test chat").click()
    test_chat = staff.get_by_role("log", name="Test chat")
    await expect(test_chat).to_contain_text("Hi! Ask me about refunds.")
    await staff.get_by_label("Message to the agent").fill("Testing, testing")
    await staff.keyboard.press("Enter")
    await expect(test_chat.locator(".msg.agent").last).to_contain_text("test chat answering")
    await shot(staff, "agents")

    # ---- CRM: a contact and its page; deals by stage ----
    await staff.get_by_role("link", name="CRM").click()
    await staff.get_by_text("Add a contact").click()
    await staff.get_by_label("First name").fill("Grace")
    await staff.get_by_label("Last name").fill(ATTACK)
    await staff.get_by_label("Email").fill("grace@example.com")
    await staff.get_by_role("button", name="Add contact").click()
    await expect(staff.get_by_role("heading", name=f"Grace {ATTACK}")).to_be_visible()
    await no_markup_ran(staff)
    await shot(staff, "crm-contact")
    await staff.get_by_role("link", name="Deals").click()
    await staff.get_by_text("Add a deal").click()
    await staff.get_by_label("Title").fill("Annual plan")
    await staff.get_by_label("Value").fill("1200")
    await staff.get_by_role("button", name="Add deal").click()
    lead = staff.get_by_role("region", name=re.compile("^lead"))
    await expect(lead).to_contain_text("Annual plan")
    await lead.get_by_label("Stage of Annual plan").select_option("qualified")
    await expect(staff.get_by_role("region", name=re.compile("^qualified"))).to_contain_text(
        "Annual plan"
    )
    await shot(staff, "crm-deals")

    # ---- settings: retention, GDPR export, audit log ----
    await staff.get_by_role("link", name="Settings").click()
    await staff.get_by_label("Delete conversations after").fill("30")
    await staff.get_by_role("button", name="Save").click()
    await expect(staff.get_by_text("Conversations are deleted after 30 days.")).to_be_visible()
    await staff.get_by_label("Find a contact").fill("grace")
    await staff.get_by_role("button", name=re.compile("^Grace")).click()
    async with staff.expect_download() as download:
        await staff.get_by_role("button", name="Export their data").click()
    assert (await download.value).suggested_filename.startswith("contact-")
    audit = staff.get_by_role("table", name=re.compile("^Audit log"))
    await expect(audit).to_contain_text("POST /api/agents")
    await expect(audit).to_contain_text("ana@acme.example")
    await shot(staff, "settings")

    # ---- the bell: the notification leads to its document ----
    await staff.get_by_role("button", name=re.compile("^Notifications")).click()
    await staff.get_by_role("button", name=re.compile("Refund policy: ready")).click()
    await expect(staff.get_by_role("heading", name="Knowledge base", level=1)).to_be_visible()
    await expect_bell(staff, "handoff_requested")

    assert problems == [] and visitor_problems == []
    await context.close()


async def test_dashboard_on_a_phone(hub, browser, base_settings):
    ARTIFACTS.mkdir(exist_ok=True)
    page = await browser.new_page(viewport={"width": 390, "height": 800})
    problems = watch(page)
    await page.goto(hub + "/app#/signup")
    await page.get_by_label("Company").fill("Phone Co")
    await page.get_by_label("Email").fill("phone@acme.example")
    await page.get_by_label("Password").fill("a long password")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="Inbox", level=1)).to_be_visible()

    # The navigation folds into a menu button.
    nav = page.get_by_role("navigation", name="Main")
    await expect(nav).to_be_hidden()
    menu = page.get_by_role("button", name="Menu")
    await menu.click()
    await expect(menu).to_have_attribute("aria-expanded", "true")
    await nav.get_by_role("link", name="Analytics").click()
    await expect(nav).to_be_hidden()
    # A new company's last 30 days: 30 empty days, drawn.
    await expect(page.locator('[data-chart="timeline"] rect.bar')).to_have_count(30)
    for name in ("analytics", "inbox", "agents", "knowledge", "workflows", "crm", "settings"):
        await page.goto(f"{hub}/app#/{name}")
        await expect(page.locator("main h1")).to_be_visible()
        # Nothing wider than the screen: no sideways scrolling of the page.
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390, name
        await shot(page, f"phone-{name}")
    # The workflow editor with a few steps and its diagram.
    await page.goto(f"{hub}/app#/workflows/new")
    for step in ("condition", "send_message"):
        await page.get_by_label("Step type").select_option(step)
        await page.get_by_role("button", name="Add step").click()
    await expect(page.locator(".workflow-diagram .box")).to_have_count(3)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await shot(page, "phone-workflow-editor")
    assert problems == []


async def test_workflows_page(hub, shop, browser):
    """The seed's Support Escalation built in the editor (a refused save shown at
    the step at fault), its dry run with the per-step trace, then a visitor's
    "urgent" through the widget: the execution appears, the conversation waits
    for a person. A second workflow (markup for a name) with a condition's yes
    and no branches and a delay: its running execution is cancelled, it is
    disabled from the list and deleted."""
    ARTIFACTS.mkdir(exist_ok=True)
    async with aiohttp.ClientSession(hub) as http:
        answer = await http.post(
            "/api/auth/signup",
            json={
                "email": "flo@acme.example",
                "password": "a long password",
                "company_name": "Acme",
            },
        )
        owner = {"Authorization": f"Bearer {(await answer.json())['access_token']}"}
        agent = await (await http.post("/api/agents", json={"name": "Help"}, headers=owner)).json()
        key = await (
            await http.post(
                f"/api/agents/{agent['id']}/keys",
                json={"allowed_origins": [shop["origin"]]},
                headers=owner,
            )
        ).json()
    shop["html"] = (
        f'<!doctype html><title>Shop</title><link rel="icon" href="data:,">'
        f'<script src="{hub}/widget.js" data-agent-id="{agent["id"]}" data-key="{key["key"]}"'
        " async></script>"
    )
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    staff = await context.new_page()
    problems = watch(staff)
    await staff.goto(hub + "/app#/login")
    await staff.get_by_label("Email").fill("flo@acme.example")
    await staff.get_by_label("Password").fill("a long password")
    await staff.keyboard.press("Enter")
    await staff.get_by_role("link", name="Workflows").click()
    await expect(staff.get_by_text("No workflows yet.")).to_be_visible()

    # ---- Support Escalation, in the editor ----
    await staff.get_by_role("link", name="New workflow").click()
    await staff.get_by_label("Name", exact=True).fill("Support Escalation")
    await staff.get_by_label("Description").fill("Escalate urgent issues")
    await staff.get_by_label("When", exact=True).select_option("message_received")
    await staff.get_by_label("Keywords", exact=True).fill("urgent, emergency")
    await staff.get_by_label("Step type").select_option("notify")
    await staff.get_by_role("button", name="Add step").click()
    notify = staff.get_by_role("region", name=re.compile("^notify"))
    title = notify.get_by_label("Title (required)")
    await expect(title).to_be_focused()  # left empty: the API refuses it below
    await staff.get_by_label("Step type").select_option("handoff")
    await staff.get_by_label("Step id").press("Enter")  # Enter adds a step, after the last one
    handoff = staff.get_by_role("region", name=re.compile("^handoff"))
    await handoff.get_by_label("Reason").fill("The customer says it is urgent")
    await staff.get_by_role("button", name="Create workflow").click()
    await expect(title).to_have_accessible_description("Field required")
    await expect(title).to_have_attribute("aria-invalid", "true")
    await expect(title).to_be_focused()
    await expect(staff.locator('.workflow-diagram [data-node="notify"]')).to_have_class(
        re.compile("invalid")
    )
    await expect(staff.get_by_role("status").filter(has_text="not saved")).to_be_visible()
    await title.fill("Urgent: {{message.content}}")
    await staff.get_by_role("button", name="Create workflow").click()
    await expect(staff.get_by_role("heading", name="Support Escalation", level=2)).to_be_visible()
    await expect(staff.get_by_text("Workflow created.")).to_be_visible()
    workflow_id = staff.url.rsplit("/", 1)[1]
    async with aiohttp.ClientSession(hub) as http:
        saved = await (await http.get(f"/api/workflows/{workflow_id}", headers=owner)).json()
    # React Flow's format: nodes with id, type, data and a position; edges.
    assert saved["trigger_config"] == {"keywords": ["urgent", "emergency"], "match": "any"}
    assert [(n["id"], n["type"], n["data"]) for n in saved["nodes"]] == [
        ("trigger", "trigger", {}),
        ("notify", "notify", {"title": "Urgent: {{message.content}}"}),
        ("handoff", "handoff", {"reason": "The customer says it is urgent"}),
    ]
    assert all(set(n["position"]) == {"x", "y"} for n in saved["nodes"])
    assert [(e["source"], e["target"]) for e in saved["edges"]] == [
        ("trigger", "notify"),
        ("notify", "handoff"),
    ]
    # Saving again without a change makes no new version.
    await staff.get_by_role("button", name="Save workflow").click()
    await expect(staff.get_by_text("Saved.")).to_be_focused()
    async with aiohttp.ClientSession(hub) as http:
        again = await (await http.get(f"/api/workflows/{workflow_id}", headers=owner)).json()
    assert again["version"] == 1 and again["updated_at"] > saved["updated_at"]

    # ---- the dry run: an example for the trigger, the trace of each step ----
    test_data = staff.get_by_label("Test data (JSON)")
    await expect(test_data).to_have_value(re.compile(r"this is urgent and emergency"))
    await staff.get_by_role("button", name="Run test").click()
    await expect(staff.get_by_text("The trigger matched")).to_be_visible()
    trace = staff.get_by_role("table", name="Test trace")
    await expect(trace.locator("tbody > tr")).to_have_count(3)
    for step in ("trigger", "notify", "handoff"):
        await expect(trace.get_by_role("row").filter(has_text=step).first).to_contain_text(
            "success"
        )
    await expect(trace).to_contain_text("Urgent: Hello, this is urgent and emergency")
    await test_data.fill('{"message": "just saying hello"}')
    await staff.get_by_role("button", name="Run test").click()
    await expect(staff.get_by_text("The trigger did not match")).to_be_visible()
    runs = staff.locator("table.executions tbody tr[data-execution]")
    await expect(runs).to_have_count(2)
    await expect(runs.first).to_contain_text("test")

    # ---- a visitor writes "urgent": a real execution, and a person is asked for ----
    visitor = await context.new_page()
    visitor_problems = watch(visitor)
    await visitor.goto(shop["origin"] + "/")
    await visitor.get_by_role("button", name="Open chat").click()
    await visitor.get_by_role("textbox", name="Message").fill("this is urgent")
    await visitor.keyboard.press("Enter")
    await staff.bring_to_front()  # a tab in the background is throttled
    real = staff.locator("table.executions tbody tr[data-execution]:not(.test)")
    await expect(real).to_have_count(1, timeout=20_000)
    await expect(real).to_contain_text("success")
    await expect(real).to_contain_text("message_received")
    await real.get_by_role("button", name="Trace (3)").click()
    run_trace = staff.locator("tr.trace-row:not([hidden])").get_by_role("table", name="Trace")
    await expect(run_trace).to_contain_text("Urgent: this is urgent")
    await expect(run_trace.locator("tbody > tr")).to_have_count(3)
    await shot(staff, "workflows")
    await staff.get_by_role("link", name="Inbox").click()
    await expect(staff.locator(".conversation-list a").first).to_contain_text(
        "Waiting for a person"
    )

    # ---- markup as a name; yes/no branches; a delayed run cancelled ----
    await staff.get_by_role("link", name="Workflows").click()
    await staff.get_by_role("link", name="New workflow").click()
    await staff.get_by_label("Name", exact=True).fill(ATTACK)
    await staff.get_by_label("When", exact=True).select_option("webhook")
    await staff.get_by_label("Step type").select_option("condition")
    await staff.get_by_role("button", name="Add step").click()
    condition = staff.get_by_role("region", name=re.compile("^condition"))
    await condition.get_by_label("Field", exact=True).fill("trigger.plan")
    await condition.get_by_label("Operator").select_option("equals")
    await condition.get_by_label("Value").fill("pro")
    await staff.get_by_label("Step type").select_option("delay")
    await staff.get_by_role("button", name="Add step").click()  # after the condition, if yes
    await staff.get_by_role("region", name=re.compile("^delay")).get_by_label("Hours").fill("1")
    await staff.get_by_label("Step type").select_option("end")
    await staff.get_by_label("Comes after").select_option(label="condition, if no")
    await staff.get_by_role("button", name="Add step").click()
    await expect(
        condition.get_by_role("button", name="Remove the connection from condition (no) to end")
    ).to_be_visible()
    await staff.get_by_role("button", name="Create workflow").click()
    await expect(staff.get_by_role("heading", name=ATTACK, level=2)).to_be_visible()
    await no_markup_ran(staff)
    attack_id = staff.url.rsplit("/", 1)[1]
    async with aiohttp.ClientSession(hub) as http:
        saved = await (await http.get(f"/api/workflows/{attack_id}", headers=owner)).json()
        assert [(e["source"], e.get("sourceHandle"), e["target"]) for e in saved["edges"]] == [
            ("trigger", None, "condition"),
            ("condition", "yes", "delay"),
            ("condition", "no", "end"),
        ]
        body = b'{"plan": "pro"}'
        fired = await http.post(
            saved["webhook_url"],
            data=body,
            headers={"X-Syntera-Signature": signature(saved["secret"], body)},
        )
        assert fired.status == 202, await fired.text()
    await staff.get_by_role("button", name="Refresh executions").click()
    waiting = staff.locator("table.executions tbody tr[data-execution]")
    await expect(waiting).to_contain_text("waiting until")
    await waiting.get_by_role("button", name="Cancel").click()
    await expect(waiting).to_contain_text("cancelled")
    await expect(waiting.get_by_role("button", name="Cancel")).to_have_count(0)

    # ---- the list: disable, delete; the name stays text ----
    await staff.get_by_role("link", name="← All workflows").click()
    await expect(staff.get_by_role("link", name=ATTACK)).to_be_visible()
    await staff.get_by_label(f"Enabled: {ATTACK}").uncheck()
    await expect(staff.get_by_text("is disabled.")).to_be_visible()
    await no_markup_ran(staff)
    async with aiohttp.ClientSession(hub) as http:
        listed = await (await http.get("/api/workflows", headers=owner)).json()
    assert {w["name"]: w["enabled"] for w in listed["workflows"]} == {
        "Support Escalation": True,
        ATTACK: False,
    }
    staff.once("dialog", lambda dialog: dialog.accept())
    await staff.get_by_role("button", name=f"Delete {ATTACK}").click()
    await expect(staff.get_by_role("link", name=ATTACK)).to_have_count(0)
    await expect(staff.get_by_role("link", name="Support Escalation")).to_be_visible()
    # The one failed request is the refused save, on purpose.
    assert problems == [
        "console: Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]
    assert visitor_problems == []
    await context.close()


def test_the_dashboard_never_parses_html():
    """Stored text reaches the page as text nodes only (docs/dashboard.md)."""
    sources = list((Path(__file__).resolve().parent.parent / "static" / "app").rglob("*.js"))
    assert sources
    for source in sources:
        code = source.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "DOMParser"):
            assert not re.search(rf"[.\s]{sink}\b\s*[=(]", code), f"{source.name} uses {sink}"


async def test_the_dashboard_page_allows_only_its_own_scripts(client):
    response = await client.get("/app")
    assert response.status == 200
    assert '<script type="module" src="/static/app/main.js">' in await response.text()
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
