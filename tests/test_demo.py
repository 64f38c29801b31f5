"""The demo a newcomer lands on."""

from __future__ import annotations

import json

from hub.demo import DEMO, DEMO_EMAIL, local_origins


async def test_demo_is_made_once_and_works(make_client, tmp_path):
    tmp_path.chmod(0o755)
    hub = await make_client(demo=True, data_dir=tmp_path, port=8123)
    demo = hub.app[DEMO]
    stored = json.loads((tmp_path / "demo.json").read_text())
    assert stored["key"] == demo.key and (tmp_path / "demo.json").stat().st_mode & 0o777 == 0o600

    # The key answers for the local origin the page is served from.
    headers = {"Authorization": f"Bearer {demo.key}", "Origin": "http://127.0.0.1:8123"}
    profile = await (await hub.get(f"/public/agents/{demo.agent_id}", headers=headers)).json()
    assert profile["name"] == "Syntera Guide" and profile["greeting"]

    # The demo owner can log in with the password kept in the data dir.
    login = await hub.post("/api/auth/login", json={"email": DEMO_EMAIL, "password": demo.password})
    assert login.status == 200

    # A restart on the same data dir reuses the demo.
    again = await make_client(demo=True, data_dir=tmp_path, port=8123)
    assert again.app[DEMO].agent_id == demo.agent_id

    # Restarted on another port, the page's new origin is allowed (and the old one no longer).
    moved = await make_client(demo=True, data_dir=tmp_path, port=8124)
    assert moved.app[DEMO].key == demo.key
    for port, status in ((8124, 200), (8123, 403)):
        headers = {"Authorization": f"Bearer {demo.key}", "Origin": f"http://127.0.0.1:{port}"}
        response = await moved.get(f"/public/agents/{demo.agent_id}", headers=headers)
        assert response.status == status, port


async def test_demo_off_by_default_with_a_database_url(client):
    assert client.app.get(DEMO) is None
    page = await client.get("/")
    assert page.status == 200


def test_local_origins():
    assert local_origins("127.0.0.1", 8080) == ["http://127.0.0.1:8080", "http://localhost:8080"]
    assert local_origins("hub.example.com", 80) == ["http://hub.example.com:80"]
