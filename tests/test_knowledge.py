"""The knowledge base end to end: real files in, grounded search out."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid

import asyncpg
import pytest
from aiohttp import FormData

from hub.services import SERVICES
from hub.uploads import TEXT_SNIFF_BYTES
from tests.documents import encrypt_pdf, make_docx, make_pdf
from tests.helpers import assert_error, signup

POLICY_PAGES = [
    ["Welcome to Acme Outdoor Gear.", "We sell tents, stoves and sleeping bags for every season."],
    [
        "Returns and refunds.",
        "You can send back any item within thirty days of delivery.",
        "The money is paid back to your original card within five working days.",
    ],
    ["Shipping.", "Orders above fifty euros ship for free anywhere in the European Union."],
]


async def upload(client, account, data, filename, **fields):
    form = FormData()
    form.add_field("file", data, filename=filename)
    for name, value in fields.items():
        form.add_field(name, value)
    return await client.post("/api/knowledge-base/upload", data=form, headers=account.headers)


async def processed(client, account, document_id, within=60.0):
    deadline = asyncio.get_running_loop().time() + within
    while True:
        response = await client.get(f"/api/knowledge-base/{document_id}", headers=account.headers)
        document = await response.json()
        if document["status"] in ("processed", "failed"):
            return document
        assert asyncio.get_running_loop().time() < deadline, document
        await asyncio.sleep(0.1)


async def add(client, account, data, filename, **fields):
    response = await upload(client, account, data, filename, **fields)
    assert response.status == 201, await response.text()
    created = await response.json()
    assert created["status"] == "pending" and set(created) >= {
        "id",
        "title",
        "status",
        "chunk_count",
        "created_at",
    }
    return await processed(client, account, created["id"])


async def search(client, account, query, **options):
    response = await client.post(
        "/api/knowledge-base/search", json={"query": query, **options}, headers=account.headers
    )
    assert response.status == 200, await response.text()
    return (await response.json())["results"]


async def test_pdf_pages_and_paraphrased_questions(client, account):
    document = await add(
        client, account, make_pdf(POLICY_PAGES), "policy.pdf", title="Store policy"
    )
    assert document["status"] == "processed" and document["chunk_count"] == 3
    assert [c["page"] for c in document["chunks"]] == [1, 2, 3]

    results = await search(
        client, account, "How do I get my money back after returning something?", mode="vector"
    )
    assert results[0]["metadata"]["page"] == 2
    assert results[0]["metadata"]["source"] == "policy.pdf"
    assert "thirty days" in results[0]["content"]
    free = await search(client, account, "Is delivery free of charge?", mode="vector", limit=1)
    assert free[0]["metadata"]["page"] == 3

    listed = await (await client.get("/api/knowledge-base", headers=account.headers)).json()
    assert [d["title"] for d in listed["documents"]] == ["Store policy"]
    notes = await (await client.get("/api/notifications", headers=account.headers)).json()
    assert notes["notifications"][0]["type"] == "document_processed"


async def test_docx_headings_and_tables(client, account):
    data = make_docx(
        [
            ("heading", "Warranty"),
            ("paragraph", "Every stove carries a two-year warranty against manufacturing defects."),
            ("heading", "Price list"),
            (
                "table",
                [["Product", "Price"], ["Alpine tent", "EUR 349"], ["Trail stove", "EUR 59"]],
            ),
        ]
    )
    document = await add(client, account, data, "handbook.docx")
    assert document["status"] == "processed"
    results = await search(client, account, "how much is the trail stove", mode="keyword")
    assert results[0]["metadata"]["heading"] == "Price list"
    assert "Trail stove | EUR 59" in results[0]["content"]
    warranty = await search(
        client, account, "guarantee on cooking equipment", mode="vector", limit=1
    )
    assert warranty[0]["metadata"]["heading"] == "Warranty"


async def test_keyword_finds_codes_vectors_miss_and_hybrid_finds_both(client, account):
    text = "\n\n".join(
        [
            "# Orders",
            "Order ORD-48213 was shipped on Monday with tracking code ZX9-55-QT.",
            "# Products",
            "The product with SKU AX-7742-B is our lightest backpack.",
            "# Care",
            "Wash sleeping bags at thirty degrees and dry them flat in the shade.",
        ]
        + [f"Filler paragraph {i} about camping trips, mountains and weather." for i in range(30)]
    )
    await add(client, account, text.encode(), "faq.md")
    keyword = await search(client, account, "AX-7742-B", mode="keyword", limit=3)
    assert "AX-7742-B" in keyword[0]["content"]
    vector = await search(client, account, "AX-7742-B", mode="vector", limit=3)
    assert not any("AX-7742-B" in r["content"] for r in vector[:1])
    hybrid = await search(client, account, "AX-7742-B lightest backpack", mode="hybrid", limit=3)
    assert "AX-7742-B" in hybrid[0]["content"]
    washing = await search(client, account, "how should I clean my sleeping bag", limit=3)
    assert any("thirty degrees" in r["content"] for r in washing)


async def test_search_is_isolated_by_company_and_agent(client, account):
    agent = await (
        await client.post("/api/agents", json={"name": "Bikes"}, headers=account.headers)
    ).json()
    other_agent = await (
        await client.post("/api/agents", json={"name": "Boats"}, headers=account.headers)
    ).json()
    await add(
        client,
        account,
        b"Our bicycles come with a lifetime frame warranty.",
        "bikes.txt",
        agent_id=agent["id"],
    )
    await add(
        client,
        account,
        b"Kayaks are delivered with two paddles included.",
        "boats.txt",
        agent_id=other_agent["id"],
    )
    await add(client, account, b"Our shop opens at nine in the morning.", "hours.txt")

    def sources(results):
        return {r["metadata"]["source"] for r in results}

    for_bikes = await search(
        client, account, "warranty paddles opening hours", agent_id=agent["id"], limit=10
    )
    assert sources(for_bikes) == {"bikes.txt", "hours.txt"}
    company_wide = await search(client, account, "warranty paddles opening hours", limit=10)
    assert sources(company_wide) == {"bikes.txt", "boats.txt", "hours.txt"}
    stranger = await signup(client)
    assert await search(client, stranger, "bicycles warranty kayaks") == []


async def test_a_deleted_document_never_appears(client, account):
    document = await add(
        client, account, b"The secret launch date is the fifth of May.", "launch.txt"
    )
    assert await search(client, account, "launch date", mode="keyword")
    assert await search(client, account, "when do you launch", mode="vector")
    response = await client.delete(f"/api/knowledge-base/{document['id']}", headers=account.headers)
    assert response.status == 200
    for mode in ("keyword", "vector", "hybrid"):
        assert await search(client, account, "launch date fifth of May", mode=mode) == []
    assert (
        await client.get(f"/api/knowledge-base/{document['id']}", headers=account.headers)
    ).status == 404


async def test_bad_files(client, account):
    corrupt = make_pdf(POLICY_PAGES)[:300]
    failed = await add(client, account, corrupt, "broken.pdf")
    assert failed["status"] == "failed" and "PDF" in failed["error"]
    locked = await add(client, account, encrypt_pdf(make_pdf(POLICY_PAGES)), "locked.pdf")
    assert locked["status"] == "failed" and "encrypted" in locked["error"]
    notes = await (await client.get("/api/notifications", headers=account.headers)).json()
    assert "document_failed" in {n["type"] for n in notes["notifications"]}

    binary = await upload(client, account, bytes(range(256)) * 10, "data.bin")
    assert binary.status == 415
    assert_error(await binary.json(), "UNSUPPORTED_MEDIA_TYPE")
    empty = await upload(client, account, b"", "empty.txt")
    assert empty.status == 400
    not_multipart = await client.post(
        "/api/knowledge-base/upload", json={"file": "x"}, headers=account.headers
    )
    assert not_multipart.status == 415


async def test_oversized_upload_is_refused(make_client):
    hub = await make_client(knowledge_max_upload_bytes=1000)
    owner = await signup(hub)
    response = await upload(hub, owner, b"a" * 5000, "big.txt")
    assert response.status == 413
    assert_error(await response.json(), "PAYLOAD_TOO_LARGE")
    listed = await (await hub.get("/api/knowledge-base", headers=owner.headers)).json()
    assert listed["documents"] == []


async def test_a_document_left_mid_processing_is_finished_after_a_restart(client, account):
    services = client.app[SERVICES]
    company_id = uuid.UUID(account.company_id)
    async with services.db.tenant(company_id) as conn:
        # As a processor that died would leave it: claimed, lease run out.
        document_id = await conn.fetchval(
            """INSERT INTO documents (company_id, title, filename, content_type, size, file, status,
                                      attempts, lease_until)
               VALUES ($1, 'Orphan', 'orphan.txt', 'text/plain', 30, $2, 'processing', 1,
                       now() - interval '1 minute') RETURNING id""",
            company_id,
            b"Orphans are finished after a restart.",
        )
    services.knowledge.wake()
    document = await processed(client, account, document_id)
    assert document["status"] == "processed" and document["chunk_count"] == 1


async def test_reprocess(client, account):
    document = await add(client, account, b"Reprocess me, please.", "again.txt")
    response = await client.post(
        f"/api/knowledge-base/{document['id']}/reprocess", headers=account.headers
    )
    assert response.status == 200 and (await response.json())["status"] == "pending"
    again = await processed(client, account, document["id"])
    assert again["status"] == "processed" and again["chunk_count"] == 1


@pytest.mark.parametrize(
    "body, field",
    [
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x", "limit": 0}, "limit"),
        ({"query": "x", "limit": 51}, "limit"),
        ({"query": "x", "mode": "semantic"}, "mode"),
        ({"query": "x", "threshold": "high"}, "threshold"),
        ({"query": "x", "agent_id": "nope"}, "agent_id"),
    ],
)
async def test_bad_search_input(client, account, body, field):
    response = await client.post("/api/knowledge-base/search", json=body, headers=account.headers)
    assert response.status == 400
    payload = await response.json()
    assert_error(payload, "VALIDATION_ERROR")
    assert field in payload["details"]["fields"]


def test_the_embedder_ranks_paraphrases_above_unrelated_text():
    import numpy as np

    from agents_runtime.knowledge.service import build_embedder
    from hub.config import Settings

    embedder = build_embedder(Settings())
    question, paraphrase, unrelated = embedder.embed(
        [
            "How can I get a refund for my order?",
            "Money is returned to customers who send items back.",
            "The mountain weather turns cold at night in October.",
        ]
    )
    assert float(np.dot(question, paraphrase)) > float(np.dot(question, unrelated)) + 0.2
    assert abs(float(np.linalg.norm(question)) - 1) < 1e-4


async def test_a_chat_turn_is_grounded_in_the_knowledge_base(client, account):
    from agents_runtime.llm import NOTHING_FOUND
    from hub.conversations import post_user_message
    from hub.store import conversations

    agent = await (
        await client.post("/api/agents", json={"name": "Shop"}, headers=account.headers)
    ).json()
    await add(client, account, make_pdf(POLICY_PAGES), "policy.pdf", agent_id=agent["id"])
    services = client.app[SERVICES]
    company_id = uuid.UUID(account.company_id)
    async with services.db.tenant(company_id) as conn:
        conversation = await conversations.create(
            conn, company_id=company_id, agent_id=uuid.UUID(agent["id"])
        )
    for question in (
        "How do I get my money back after a return?",
        "What is the capital of France?",
    ):
        async with services.db.tenant(company_id) as conn:
            await post_user_message(
                services,
                conn,
                company_id=company_id,
                conversation_id=conversation["id"],
                content=question,
            )
        await services.jobs.join()
    messages = (
        await (
            await client.get(
                f"/api/conversations/{conversation['id']}/messages", headers=account.headers
            )
        ).json()
    )["messages"]
    grounded, refused = [m for m in messages if m["sender_type"] == "agent"]
    # The offline responder quotes the passage and cites it; the source has its page.
    assert "original card" in grounded["content"] and "[1]" in grounded["content"]
    sources = grounded["ai_metadata"]["sources"]
    assert sources[0]["page"] == 2 and sources[0]["source"] == "policy.pdf"
    assert refused["content"] == NOTHING_FOUND


async def test_the_openai_embedder_is_chosen_by_its_own_setting(fake, make_client):
    hub = await make_client(
        embedding_provider="openai",
        embedding_model="text-embedding-3-small",
        openai_api_key="sk-test",
        openai_base_url=fake.base_url,
    )
    owner = await signup(hub)
    embedder = hub.app[SERVICES].knowledge.embedder
    embedder.dimension = 64  # the fake server's vectors are smaller than the real model's
    await add(hub, owner, b"Kayaks come with two paddles.\n\nTents sleep four people.", "gear.txt")
    results = await search(hub, owner, "how many paddles come with kayaks", mode="vector", limit=1)
    assert "paddles" in results[0]["content"]
    embedded = [r for r in fake.requests if "input" in r]
    assert embedded and all(r["model"] == "text-embedding-3-small" for r in embedded)
    async with hub.app[SERVICES].db.system() as conn:
        models = await conn.fetch(
            "SELECT DISTINCT embedding_model FROM chunks c JOIN documents d"
            " ON d.id = c.document_id WHERE d.company_id = $1",
            uuid.UUID(owner.company_id),
        )
    assert [m["embedding_model"] for m in models] == ["text-embedding-3-small@chunks-v2"]


async def test_the_cached_index_is_updated_in_place(client, account):
    services = client.app[SERVICES]
    company_id = uuid.UUID(account.company_id)
    first = await add(client, account, b"Lanterns run for ten hours on one charge.", "lantern.txt")
    assert await search(client, account, "how long does the lantern battery last", mode="vector")
    cached = services.knowledge.cache.get(company_id)
    assert cached is not None and cached.index.ntotal == 1
    await add(
        client, account, b"Hammocks hold up to one hundred and fifty kilograms.", "hammock.txt"
    )
    for _ in range(50):  # the change reaches the cache through the event bus
        if cached.index.ntotal == 2:
            break
        await asyncio.sleep(0.02)
    assert services.knowledge.cache.get(company_id) is cached and cached.index.ntotal == 2
    results = await search(
        client, account, "what weight can a hammock carry", mode="vector", limit=1
    )
    assert results[0]["metadata"]["source"] == "hammock.txt"
    await client.delete(f"/api/knowledge-base/{first['id']}", headers=account.headers)
    assert services.knowledge.cache.get(company_id) is cached and cached.index.ntotal == 1


async def test_a_search_that_gives_up_leaves_the_index_building(client, account):
    # A chat turn searches under a time budget: if it gives up while the
    # company's index is being built, the build goes on for the next search.
    services = client.app[SERVICES]
    company_id = uuid.UUID(account.company_id)
    await add(client, account, b"Paddleboards carry one rider.", "board.txt")
    services.knowledge.cache.drop(company_id)
    search = asyncio.create_task(services.knowledge._index(company_id))
    await asyncio.sleep(0)  # the search has started the build
    search.cancel()
    for _ in range(200):
        if services.knowledge.cache.get(company_id) is not None:
            break
        await asyncio.sleep(0.02)
    assert services.knowledge.cache.get(company_id) is not None


async def test_a_gap_in_the_event_bus_forgets_the_cached_indexes(client, account):
    # After a Redis restart this process may have missed knowledge.changed
    # events (tests/test_realtime.py shows the bus reporting such a gap).
    services = client.app[SERVICES]
    company_id = uuid.UUID(account.company_id)
    await add(client, account, b"Canoes seat three adults.", "canoe.txt")
    assert await search(client, account, "how many people fit in a canoe", mode="keyword")
    assert services.knowledge.cache.get(company_id) is not None
    await services.events._gap()
    assert services.knowledge.cache.get(company_id) is None
    assert await search(client, account, "how many people fit in a canoe", mode="keyword")
    assert services.knowledge.cache.get(company_id) is not None


async def test_a_change_of_embedding_model_re_embeds_at_start_up(client, account, make_client):
    document = await add(client, account, b"Gift cards never expire.", "cards.txt")
    services = client.app[SERVICES]
    current = services.knowledge.embedding_key
    async with services.db.system() as conn:
        # As left by a hub that ran with another embedder.
        await conn.execute(
            "UPDATE chunks SET embedding_model = 'an-older-model' WHERE document_id = $1",
            uuid.UUID(document["id"]),
        )
    assert await search(client, account, "do gift cards expire", mode="vector") == []

    await make_client()  # a process starting its ingestion loop
    for _ in range(600):
        async with services.db.system() as conn:
            models = await conn.fetch(
                "SELECT DISTINCT embedding_model FROM chunks WHERE document_id = $1",
                uuid.UUID(document["id"]),
            )
        if [m["embedding_model"] for m in models] == [current]:
            break
        await asyncio.sleep(0.1)
    assert [m["embedding_model"] for m in models] == [current]
    assert (await processed(client, account, document["id"]))["status"] == "processed"
    # Either hub may have re-embedded it; without Redis they share no event
    # bus, so this one is told to forget its cached index.
    services.knowledge.cache.drop(uuid.UUID(account.company_id))
    found = await search(client, account, "do gift cards expire", mode="vector")
    assert found and "Gift cards" in found[0]["content"]


class _Stalling:
    """The real embedder, held at its first batch until the test lets it go."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.started, self.go = threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed(self, texts):
        self.started.set()
        self.go.wait(10)
        return self.inner.embed(texts)


async def test_a_document_interrupted_by_a_shutdown_is_handed_back_at_once(client, account):
    from agents_runtime.knowledge.service import Knowledge

    services = client.app[SERVICES]
    company_id = uuid.UUID(account.company_id)
    async with services.db.tenant(company_id) as conn:
        # Claimed by the process about to stop.
        document = await conn.fetchrow(
            """INSERT INTO documents (company_id, title, filename, content_type, size, file,
                                      status, attempts, lease_until)
               VALUES ($1, 'Busy', 'busy.txt', 'text/plain', 20, $2, 'processing', 1,
                       now() + interval '5 minutes')
               RETURNING id, company_id, agent_id, title, filename, content_type, file, attempts,
                         last_error""",
            company_id,
            b"Interrupted mid-way.",
        )
    stalling = _Stalling(services.knowledge.embedder)
    knowledge = Knowledge(services, embedder=stalling)
    task = asyncio.create_task(knowledge._process(dict(document)))
    try:
        assert await asyncio.to_thread(stalling.started.wait, 10)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        async with services.db.tenant(company_id) as conn:
            row = await conn.fetchrow(
                "SELECT status, lease_until, attempts FROM documents WHERE id = $1",
                document["id"],
            )
        assert (row["status"], row["lease_until"], row["attempts"]) == ("pending", None, 0)
    finally:
        stalling.go.set()
        knowledge.close()
    services.knowledge.wake()  # and the running hub finishes it
    assert (await processed(client, account, document["id"]))["status"] == "processed"


async def test_another_companys_document_is_not_found(client, account):
    document = await add(client, account, b"Only ours.", "ours.txt")
    other = await signup(client, "Other Co")
    path = f"/api/knowledge-base/{document['id']}"
    for method, url in [
        ("GET", path),
        ("POST", path + "/reprocess"),
        ("DELETE", path),
    ]:
        response = await client.request(method, url, headers=other.headers)
        assert response.status == 404, (method, url)
        assert_error(await response.json(), "NOT_FOUND")
    # Untouched for its owner: still there, still processed.
    mine = await (await client.get(path, headers=account.headers)).json()
    assert mine["status"] == "processed" and mine["chunk_count"] == 1


# ---------- hostile edges ----------


def _multipart(*parts: tuple[bytes, bytes]) -> tuple[bytes, dict[str, str]]:
    """A multipart body written byte by byte, as a hostile client may write it
    (aiohttp's FormData would escape what these tests need raw)."""
    boundary = b"hostile-boundary"
    body = b"".join(
        b"--%s\r\nContent-Disposition: form-data; %s\r\n\r\n%s\r\n" % (boundary, disposition, value)
        for disposition, value in parts
    )
    body += b"--%s--\r\n" % boundary
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"}


GOOD_FILE = (b'name="file"; filename="fine.txt"', b"Harmless words about tents.")


@pytest.mark.parametrize(
    "parts, field",
    [
        ([GOOD_FILE, (b'name="title"', b"Tent\x00guide")], "title"),
        ([GOOD_FILE, (b'name="description"', b"All \x00 about tents")], "description"),
        ([GOOD_FILE, (b'name="agent_id"', b"\x00")], "agent_id"),
        # RFC 5987: the encoded name decodes to one holding a NUL.
        ([(b"name=\"file\"; filename*=UTF-8''a%00b.txt", b"Harmless words.")], "filename"),
        # Raw bytes that are no UTF-8 in the part's header.
        ([(b'name="file"; filename="caf\xe9.txt"', b"Harmless words.")], "filename"),
        # A raw NUL in a part's header, and an encoding no one knows: no form at all.
        ([(b'name="file"; filename="a\x00b.txt"', b"Harmless words.")], "body"),
        ([GOOD_FILE, (b'name="title"\r\nContent-Transfer-Encoding: x-bogus', b"T")], "body"),
    ],
)
async def test_hostile_upload_fields_are_refused_and_nothing_is_stored(
    client, account, caplog, parts, field
):
    body, headers = _multipart(*parts)
    with caplog.at_level(logging.INFO):
        response = await client.post(
            "/api/knowledge-base/upload", data=body, headers={**account.headers, **headers}
        )
    assert response.status == 400, await response.text()
    payload = await response.json()
    assert_error(payload, "VALIDATION_ERROR")
    assert field in payload["details"]["fields"], payload
    listed = await (await client.get("/api/knowledge-base", headers=account.headers)).json()
    assert listed["documents"] == []
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


async def test_a_character_cut_by_the_type_sniffing_is_no_reason_to_refuse(client, account):
    # "é" is two bytes, the first the last of the 64 KB the type is told from.
    head = b"Tents and stoves for every season. " * 2000
    text = head[: TEXT_SNIFF_BYTES - 1] + "é".encode() + b" The glacier lantern shines for days."
    assert len(text[:TEXT_SNIFF_BYTES].decode("utf-8", errors="ignore").encode()) < TEXT_SNIFF_BYTES
    document = await add(client, account, text, "straddling.txt")
    assert document["status"] == "processed", document
    found = await search(client, account, "glacier lantern", mode="keyword", limit=1)
    assert found and "glacier lantern" in found[0]["content"]
    # A byte that is no UTF-8 at all, within what is sniffed, is still refused.
    broken = head[:1000] + b"\xff" + head[:1000]
    response = await upload(client, account, broken, "broken.txt")
    assert response.status == 415
    assert_error(await response.json(), "UNSUPPORTED_MEDIA_TYPE")


async def test_nul_beyond_the_sniffed_prefix_is_stripped_and_said(client, account):
    text = (
        b"Sleeping bags keep you warm below freezing. " * 2000
        + b"The summit hut\x00 serves hot soup."
    )
    assert text.index(b"\x00") > TEXT_SNIFF_BYTES
    document = await add(client, account, text, "hut.txt")
    assert document["status"] == "processed", document
    assert document["error"] is None and "Removed 1 character" in document["notice"]
    listed = await (await client.get("/api/knowledge-base", headers=account.headers)).json()
    assert "NUL" in listed["documents"][0]["notice"]
    found = await search(client, account, "summit hut soup", mode="keyword", limit=1)
    assert "The summit hut serves hot soup." in found[0]["content"]
    services = client.app[SERVICES]
    async with services.db.tenant(uuid.UUID(account.company_id)) as conn:
        stored = await conn.fetchval(
            "SELECT string_agg(content, '') FROM chunks WHERE document_id = $1",
            uuid.UUID(document["id"]),
        )
    assert "\x00" not in stored


async def test_a_document_that_fails_the_same_way_twice_ends_failed(own_database, make_client):
    # A failure at the edge of the world: PostgreSQL refuses this document's
    # passages, every time (as it refused passages holding a NUL).
    admin = await asyncpg.connect(own_database)
    try:
        await admin.execute(
            """CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN
                   IF NEW.content LIKE '%poison%' THEN
                       RAISE EXCEPTION 'no room for poison';
                   END IF;
                   RETURN NEW;
               END $$;
               CREATE TRIGGER refuse_poison BEFORE INSERT ON chunks
                   FOR EACH ROW EXECUTE FUNCTION refuse_poison();"""
        )
    finally:
        await admin.close()
    hub = await make_client(database_url=own_database)
    owner = await signup(hub)
    document = await add(hub, owner, b"This passage holds poison.", "poison.txt")
    assert document["status"] == "failed", document
    assert "no room for poison" in document["error"] and document["chunk_count"] == 0
    async with hub.app[SERVICES].db.system() as conn:
        attempts = await conn.fetchval(
            "SELECT attempts FROM documents WHERE id = $1", uuid.UUID(document["id"])
        )
    assert attempts == 2  # the same failure twice; not a third time, not for ever
    notes = await (await hub.get("/api/notifications", headers=owner.headers)).json()
    failed = [n for n in notes["notifications"] if n["type"] == "document_failed"]
    assert "no room for poison" in failed[0]["body"]
    # The rest of the knowledge base goes on.
    fine = await add(hub, owner, b"Tents sleep four people.", "tents.txt")
    assert fine["status"] == "processed"


async def test_a_document_whose_processor_always_dies_ends_failed(client, account):
    from agents_runtime.knowledge.service import MAX_ATTEMPTS

    services = client.app[SERVICES]
    company_id = uuid.UUID(account.company_id)
    async with services.db.tenant(company_id) as conn:
        # As processors that died on it, one after another, would leave it.
        document_id = await conn.fetchval(
            """INSERT INTO documents (company_id, title, filename, content_type, size, file, status,
                                      attempts, lease_until)
               VALUES ($1, 'Killer', 'killer.txt', 'text/plain', 10, $2, 'processing', $3,
                       now() - interval '1 minute') RETURNING id""",
            company_id,
            b"Deadly text",
            MAX_ATTEMPTS,
        )
    services.knowledge.wake()
    document = await processed(client, account, document_id)
    assert document["status"] == "failed"
    assert f"did not finish after {MAX_ATTEMPTS} attempts" in document["error"]


async def test_the_first_document_after_searching_an_empty_base_logs_nothing(
    client, account, caplog
):
    services = client.app[SERVICES]
    company_id = uuid.UUID(account.company_id)
    with caplog.at_level(logging.INFO):
        assert await search(client, account, "anything at all", mode="hybrid") == []
        empty = services.knowledge.cache.get(company_id)
        await add(client, account, b"Compasses point north.", "compass.txt")
        for _ in range(100):  # the change reaches the cached index through the event bus
            if empty.index.ntotal == 1:
                break
            await asyncio.sleep(0.05)
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    # The empty company's index had the embedder's dimension, and took the
    # first vector in place.
    assert empty.index.d == services.knowledge.embedder.dimension
    assert services.knowledge.cache.get(company_id) is empty and empty.index.ntotal == 1
    found = await search(client, account, "which way does a compass point", mode="vector")
    assert found and "north" in found[0]["content"]


async def test_every_mode_scores_0_to_1_and_the_threshold_cuts_each_alike(client, account):
    text = "\n\n".join(
        [
            "# Returns",
            "Unworn shoes can be returned within thirty days for a full refund.",
            "# Delivery",
            "Parcels are delivered in two to four working days, tracked all the way.",
            "# Repairs",
            "We resole walking boots in our own workshop for a fixed price.",
        ]
    )
    await add(client, account, text.encode(), "shop.md")
    for query in ("Can I return my shoes for a refund?", "How long does delivery take?"):
        for mode in ("vector", "keyword", "hybrid"):
            everything = await search(client, account, query, mode=mode, limit=10)
            scores = [r["score"] for r in everything]
            assert scores and all(0 <= s <= 1 for s in scores), (query, mode, scores)
            assert scores == sorted(scores, reverse=True)
            # Above the best score: nothing, in every mode (hybrid used to return 0.0).
            above = min(1.0, scores[0] + 0.001)
            assert await search(client, account, query, mode=mode, threshold=above) == []
            # In between: exactly the results scoring at least the threshold.
            middle = (scores[0] + scores[-1]) / 2 if len(scores) > 1 else scores[0]
            kept = await search(client, account, query, mode=mode, limit=10, threshold=middle)
            assert kept == [r for r in everything if r["score"] >= middle], (query, mode)
            assert kept and all(r["score"] >= middle for r in kept)
    # The hybrid score is the mean of the two others, for the best chunk of each query.
    query = "Can I return my shoes for a refund?"
    [vector] = await search(client, account, query, mode="vector", limit=1)
    [keyword] = await search(client, account, query, mode="keyword", limit=1)
    [hybrid] = await search(client, account, query, mode="hybrid", limit=1)
    assert vector["chunk_id"] == keyword["chunk_id"] == hybrid["chunk_id"]
    assert hybrid["score"] == pytest.approx((vector["score"] + keyword["score"]) / 2, abs=2e-6)
    # A scale of 0-1: a threshold outside it is refused, as any bad input.
    for threshold in (-0.1, 1.5, 1000):
        response = await client.post(
            "/api/knowledge-base/search",
            json={"query": query, "threshold": threshold},
            headers=account.headers,
        )
        assert response.status == 400, threshold
        assert "threshold" in (await response.json())["details"]["fields"]
