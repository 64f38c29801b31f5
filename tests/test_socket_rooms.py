"""The Socket.IO client manager (http_api/realtime/manager.py) keeps each
client's rooms indexed: its room table must stay exactly the stock
manager's through every way of entering and leaving a room."""

from __future__ import annotations

import random

import socketio

from http_api.realtime.manager import IndexedManager


def _table(manager: socketio.AsyncManager) -> dict:
    return {
        namespace: {room: dict(members) for room, members in rooms.items()}
        for namespace, rooms in manager.rooms.items()
    }


async def test_rooms_match_the_stock_manager_through_connects_rooms_and_disconnects():
    stock, indexed = socketio.AsyncManager(), IndexedManager()
    for manager in (stock, indexed):  # a server makes the sids
        socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)
    rng = random.Random(7)
    namespaces = ["/widget", "/dashboard"]
    connected: dict[str, list[tuple[str, str]]] = {ns: [] for ns in namespaces}
    for step in range(3000):
        namespace = rng.choice(namespaces)
        clients = connected[namespace]
        action = rng.random()
        if action < 0.3 or not clients:
            eio_sid = f"eio{step}"
            a, b = (
                await stock.connect(eio_sid, namespace),
                await indexed.connect(eio_sid, namespace),
            )
            clients.append((a, b))
            for room in (a, f"conversation:{rng.randrange(20)}", "key:1"):
                await stock.enter_room(a, namespace, room)
                await indexed.enter_room(b, namespace, room.replace(a, b))
        elif action < 0.5:
            a, b = rng.choice(clients)
            room = f"conversation:{rng.randrange(20)}"
            await stock.leave_room(a, namespace, room)
            await indexed.leave_room(b, namespace, room)
        elif action < 0.55:
            room = f"conversation:{rng.randrange(20)}"
            await stock.close_room(room, namespace)
            await indexed.close_room(room, namespace)
        else:
            a, b = clients.pop(rng.randrange(len(clients)))
            stock.pre_disconnect(a, namespace)
            indexed.pre_disconnect(b, namespace)
            await stock.disconnect(a, namespace)
            await indexed.disconnect(b, namespace)
            assert not indexed.is_connected(b, namespace)
        # sids are random per manager: compare the tables with sids renamed
        rename = {a: b for clients in connected.values() for a, b in clients}
        expected = {
            ns: {
                rename.get(room, room): {rename[s]: e for s, e in members.items()}
                for room, members in rooms.items()
            }
            for ns, rooms in _table(stock).items()
        }
        assert _table(indexed) == expected, step
        for a, b in clients[:3]:
            expected_rooms = sorted(str(rename.get(r, r)) for r in stock.get_rooms(a, namespace))
            assert sorted(str(r) for r in indexed.get_rooms(b, namespace)) == expected_rooms
    assert not indexed.pending_disconnect and not indexed.callbacks
