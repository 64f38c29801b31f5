"""BM25 keyword search through the hub: statistics per company (one tenant's
documents never move another's scores), kept exact through re-indexing and
deletion, and web-search syntax (-exclusions, "quoted phrases") honoured."""

from __future__ import annotations

import asyncio
import uuid

from hub.services import SERVICES
from tests.helpers import signup
from tests.test_knowledge import add, processed, search


def keywords(client, account):
    entry = client.app[SERVICES].knowledge.cache.get(uuid.UUID(account.company_id))
    return None if entry is None else entry.keywords


async def test_bm25_statistics_are_the_company_s_own(client, account):
    await add(client, account, b"Our bicycles carry a lifetime frame warranty.", "bikes.txt")
    await add(client, account, b"The shop opens at nine in the morning.", "hours.txt")
    before = await search(client, account, "frame warranty", mode="keyword", limit=5)
    assert [r["metadata"]["source"] for r in before] == ["bikes.txt"]

    other = await signup(client, "Other")
    for i in range(6):
        text = f"Warranty claim number {i}: the frame warranty was honoured.".encode()
        await add(client, other, text, f"claim-{i}.txt")
    theirs = await search(client, other, "frame warranty", mode="keyword", limit=10)
    assert len(theirs) == 6 and all(r["metadata"]["source"].startswith("claim-") for r in theirs)

    # Six documents full of "warranty" elsewhere leave this company's idf, and so
    # its scores, exactly as they were; its index holds none of their chunks.
    after = await search(client, account, "frame warranty", mode="keyword", limit=5)
    assert after == before
    ours, stranger = keywords(client, account), keywords(client, other)
    assert len(ours) == 2 and len(stranger) == 6
    assert not set(ours.terms) & set(stranger.terms)


async def test_re_indexing_and_deletion_keep_keyword_statistics_exact(client, account):
    kept = await add(client, account, b"Tents are pitched in five minutes.", "tents.txt")
    gone = await add(client, account, b"Stoves burn gas for two hours.", "stoves.txt")
    assert await search(client, account, "tents stoves", mode="keyword")  # the index is cached
    cached = keywords(client, account)
    assert cached is not None and len(cached) == 2

    response = await client.post(
        f"/api/knowledge-base/{kept['id']}/reprocess", headers=account.headers
    )
    assert response.status == 200
    await processed(client, account, kept["id"])
    response = await client.delete(f"/api/knowledge-base/{gone['id']}", headers=account.headers)
    assert response.status == 200
    await add(client, account, b"Sleeping bags keep you warm below zero.", "bags.txt")

    # What the cache became by events must be what a build from PostgreSQL gives.
    deadline = asyncio.get_running_loop().time() + 10
    while (
        len(keywords(client, account) or ()) != 2 or "stove" in keywords(client, account).postings
    ):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    updated = keywords(client, account)
    assert updated is cached  # updated in place, not rebuilt
    client.app[SERVICES].knowledge.cache.drop(uuid.UUID(account.company_id))
    results = await search(client, account, "tents sleeping bags stoves", mode="keyword")
    fresh = keywords(client, account)
    assert fresh is not updated
    assert fresh.postings == updated.postings and fresh.lengths == updated.lengths
    assert fresh.total_length == updated.total_length
    assert {r["metadata"]["source"] for r in results} == {"tents.txt", "bags.txt"}


async def test_exclusions_and_quoted_phrases(client, account):
    await add(client, account, b"Our tents are waterproof and light.", "tents.txt")
    await add(client, account, b"Our stoves are light, not waterproof at all.", "stoves.txt")
    await add(client, account, b"Light jackets, light gloves, light hats: all light.", "light.txt")

    def sources(results):
        return [r["metadata"]["source"] for r in results]

    assert sources(await search(client, account, "light", mode="keyword"))[0] == "light.txt"
    assert set(sources(await search(client, account, "light -stoves", mode="keyword"))) == {
        "tents.txt",
        "light.txt",
    }
    # What is excluded is not asked for: it lowers no score (scores are shares of
    # what the words asked for could score).
    plain = await search(client, account, "light", mode="keyword")
    excluding = await search(client, account, "light -stoves", mode="keyword")
    assert {r["chunk_id"]: r["score"] for r in excluding} == {
        r["chunk_id"]: r["score"] for r in plain if r["metadata"]["source"] != "stoves.txt"
    }
    phrase = sources(await search(client, account, '"waterproof and light"', mode="keyword"))
    assert phrase[0] == "tents.txt" and set(phrase) == {"tents.txt", "stoves.txt", "light.txt"}
    assert await search(client, account, "the and of", mode="keyword") == []  # stop words only
