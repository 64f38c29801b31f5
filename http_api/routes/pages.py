"""The pages a person opens: the demo page at `/`, the dashboard at `/app`,
the widget's script, and the files under `/static/` (a missing one is a JSON
404 like any other)."""

from __future__ import annotations

import html
from pathlib import Path

from aiohttp import web

from http_api.assets import asset, file_asset, respond
from http_api.routes import api
from http_api.routing import Call, public_base
from hub.demo import DEMO
from hub.errors import ApiError

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
# The dashboard runs only its own scripts and styles: even if stored text ever
# reached the page as markup, a script in it would not run.
DASHBOARD_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
PAGE = {"tags": ("pages",), "auth": "none", "rate_limit": "none"}


@api.get("/", produces="text/html", conditional=True, **PAGE)
async def index(call: Call) -> web.Response:
    """The demo page: a chat with the demo agent, and how to log in."""
    demo = call.request.app.get(DEMO)
    data_dir = call.services.settings.data_dir
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    values = {
        # The snippets name the address this page was reached at (or PUBLIC_URL),
        # so they work as printed whatever HOST and PORT the hub serves on.
        "{{HUB_URL}}": public_base(call.request),
        "{{DEMO_AGENT_ID}}": demo.agent_id if demo else "",
        "{{DEMO_KEY}}": demo.key if demo else "",
        "{{DEMO_LOGIN}}": (
            f"{demo.email} (password in {data_dir / 'demo.json'})"
            if demo
            else "the demo is off (SYNTERA_DEMO=0): sign up with POST /api/auth/signup"
        ),
    }
    for placeholder, value in values.items():
        page = page.replace(placeholder, html.escape(value))
    return respond(call.request, asset(page.encode(), "text/html"))


@api.get("/app", produces="text/html", conditional=True, **PAGE)
async def dashboard(call: Call) -> web.Response:
    """The staff dashboard (a single page that calls the REST API)."""
    page = file_asset(STATIC_DIR / "app" / "index.html")
    return respond(call.request, page, {"Content-Security-Policy": DASHBOARD_CSP})


@api.get("/widget.js", produces="text/javascript", conditional=True, **PAGE)
async def widget_js(call: Call) -> web.Response:
    """The chat widget's script, embedded by other sites (docs/realtime.md)."""
    script = file_asset(STATIC_DIR / "widget.js")
    # Embedded by other sites.
    return respond(call.request, script, {"Access-Control-Allow-Origin": "*"})


# Whatever the file: a script, a style sheet, a page, a licence text.
@api.get("/static/{path:.+}", produces="*/*", conditional=True, **PAGE)
async def static_file(call: Call) -> web.Response:
    """A file of the widget, the demo page or the dashboard."""
    try:
        path = (STATIC_DIR / call.params["path"]).resolve()
        # is_file() stats the name: one too long for the file system raises
        # OSError, which must be a 404, not the 503 of a database OSError.
        exists = path.is_relative_to(STATIC_DIR) and path.is_file()
    except (OSError, ValueError):  # a NUL, a name the OS refuses
        raise ApiError.not_found("File") from None
    if not exists:
        raise ApiError.not_found("File")
    return respond(call.request, file_asset(path))
