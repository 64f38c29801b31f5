"""The pages and files a browser fetches (http_api/routes/pages.py, served by
http_api/assets.py): the address the landing page prints, the charset of
every text file, gzip, ETags and the cache policy.

In-process over real HTTP: a hub built by the test answers on a port of its
own while its settings keep the default PORT 8080, which is the situation
of a hub behind a proxy or started on another port — the landing page must
name the address it was reached at, not its settings'."""

from __future__ import annotations

import gzip

import pytest

from http_api.routes.pages import STATIC_DIR

# Every text file a page or the widget loads, and the pages themselves.
TEXT_FILES = sorted(
    "/static/" + str(path.relative_to(STATIC_DIR))
    for path in STATIC_DIR.rglob("*")
    if path.suffix in (".js", ".css", ".html")
)
PAGES = ["/", "/app", "/widget.js", "/api/docs", *TEXT_FILES]


async def test_the_landing_page_names_the_address_it_was_reached_at(make_client):
    hub = await make_client()
    assert hub.port != 8080  # a port of its own, not the settings' default
    page = await (await hub.get("/")).text()
    here = f"http://127.0.0.1:{hub.port}"
    assert f'&lt;script src="{here}/widget.js"' in page
    assert f"curl -s -X POST {here}/api/auth/signup" in page
    assert "8080" not in page and "{{" not in page

    # Reached by another name (a proxy passing the Host on), that name.
    page = await (await hub.get("/", headers={"Host": "hub.internal:9000"})).text()
    assert "http://hub.internal:9000/widget.js" in page
    # A Host header is the caller's: it is text in the page, never markup.
    page = await (await hub.get("/", headers={"Host": 'x"><b>'})).text()
    assert 'x"><b>' not in page and "x&quot;&gt;&lt;b&gt;" in page


async def test_the_landing_page_uses_public_url_when_set(make_client):
    hub = await make_client(public_url="https://hub.example.com/")
    page = await (await hub.get("/")).text()
    assert '&lt;script src="https://hub.example.com/widget.js"' in page
    assert "curl -s -X POST https://hub.example.com/api/auth/signup" in page
    assert "127.0.0.1" not in page


@pytest.mark.parametrize("path", PAGES)
async def test_every_text_file_says_it_is_utf8_and_comes_gzipped(client, path):
    plain = await client.get(path, headers={"Accept-Encoding": "identity"}, auto_decompress=False)
    assert plain.status == 200
    media, _, params = plain.headers["Content-Type"].partition(";")
    assert media.startswith("text/") and params.strip().lower() == "charset=utf-8", path
    assert "Content-Encoding" not in plain.headers
    body = await plain.read()
    body.decode("utf-8")  # what the charset says

    zipped = await client.get(path, headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Content-Type"] == plain.headers["Content-Type"]
    packed = await zipped.read()
    assert gzip.decompress(packed) == body and len(packed) < len(body)
    for response in (plain, zipped):
        assert response.headers["Vary"] == "Accept-Encoding"
        assert response.headers["Cache-Control"] == "no-cache"
    # Two representations, two validators.
    assert plain.headers["ETag"] != zipped.headers["ETag"]


async def test_the_widget_sources_are_ascii_so_no_host_encoding_can_garble_them():
    # Even behind a proxy that drops the charset, a windows-1252 page reads
    # them right: non-ASCII text is written as \\u escapes.
    for name in ("widget.js", "widget.css"):
        (STATIC_DIR / name).read_bytes().decode("ascii")


@pytest.mark.parametrize("encoding", ["gzip", "identity"])
async def test_a_current_copy_is_revalidated_with_a_304(client, encoding):
    first = await client.get("/widget.js", headers={"Accept-Encoding": encoding})
    etag = first.headers["ETag"]
    assert etag.startswith('"') and first.headers["Access-Control-Allow-Origin"] == "*"

    again = await client.get(
        "/widget.js", headers={"Accept-Encoding": encoding, "If-None-Match": etag}
    )
    assert again.status == 304 and await again.read() == b""
    assert again.headers["ETag"] == etag and again.headers["Cache-Control"] == "no-cache"
    # A weak form of the tag and a list with it match too (RFC 9110 13.1.2).
    for header in (f"W/{etag}", f'"stale", {etag}', "*"):
        response = await client.get(
            "/widget.js", headers={"Accept-Encoding": encoding, "If-None-Match": header}
        )
        assert response.status == 304, header
    # Another copy (an older release's tag) gets the file.
    stale = await client.get(
        "/widget.js", headers={"Accept-Encoding": encoding, "If-None-Match": '"older"'}
    )
    assert stale.status == 200 and await stale.text() == await first.text()


async def test_a_changed_file_gets_a_new_etag_at_once(client, tmp_path, monkeypatch):
    """A release replaces the files: the next revalidation gets the new one."""
    from http_api.routes import pages

    (tmp_path / "widget.js").write_text("// one\n")
    monkeypatch.setattr(pages, "STATIC_DIR", tmp_path)
    before = await client.get("/widget.js")
    (tmp_path / "widget.js").write_text("// release two\n")
    after = await client.get("/widget.js", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status == 200 and await after.text() == "// release two\n"
    assert after.headers["ETag"] != before.headers["ETag"]


async def test_gzip_refused_with_q0_is_not_sent(client):
    response = await client.get(
        "/widget.js", headers={"Accept-Encoding": "gzip;q=0, br"}, auto_decompress=False
    )
    assert "Content-Encoding" not in response.headers
    assert (await response.read()).startswith(b"/*")


async def test_the_dashboard_page_keeps_its_policy_on_a_304(client):
    first = await client.get("/app")
    again = await client.get("/app", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304
    assert "script-src 'self'" in again.headers["Content-Security-Policy"]


async def test_a_missing_file_is_still_a_json_404(client):
    response = await client.get("/static/no-such.css", headers={"Accept-Encoding": "gzip"})
    assert response.status == 404 and (await response.json())["code"] == "NOT_FOUND"
    # A name too long for the file system (stat raises OSError): a 404 too,
    # not the 503 a database's OSError gets (schemathesis found it).
    response = await client.get("/static/" + "é" * 200)
    assert response.status == 404 and (await response.json())["code"] == "NOT_FOUND"


async def test_the_document_says_which_routes_answer_304(client):
    document = await (await client.get("/api/openapi.json")).json()
    for path in ("/", "/app", "/widget.js", "/static/{path}", "/api/docs"):
        operation = document["paths"][path]["get"]
        assert "304" in operation["responses"], path
        assert {"name": "If-None-Match", "in": "header"}.items() <= operation["parameters"][
            -1
        ].items()
    assert "304" not in document["paths"]["/healthz"]["get"]["responses"]
