"""python-socketio's in-memory client manager, with each client's rooms indexed.

The stock manager finds a leaving client's rooms by copying its namespace's
room table and testing every room: a disconnect costs time in proportion to
all the rooms of the process, not to the client's. A widget socket is in
three (its own, its conversation's, its key's), so with 20 000 widgets open
one disconnect copied and scanned ~40 000 rooms, and the sockets leaving
after a deploy or a benchmark's level took minutes of CPU between them.
Here each client's rooms are kept beside the table, and a disconnect (or
`get_rooms`) visits only those. Room membership itself is unchanged: every
change still goes through `basic_enter_room`/`basic_leave_room`.
"""

from __future__ import annotations

from typing import Any

import socketio


class IndexedManager(socketio.AsyncManager):
    def __init__(self) -> None:
        super().__init__()
        # (namespace, sid) -> the rooms it is in, None (the namespace's
        # table of connected clients) included.
        self._client_rooms: dict[tuple[str, str], set[Any]] = {}

    def basic_enter_room(self, sid, namespace, room, eio_sid=None):
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self._client_rooms.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid, namespace, room):
        super().basic_leave_room(sid, namespace, room)
        rooms = self._client_rooms.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._client_rooms[(namespace, sid)]

    def basic_disconnect(self, sid, namespace, **kwargs):
        if namespace not in self.rooms:
            return
        for room in list(self._client_rooms.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        # The rest is the stock method's, after its scan of every room.
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            waiting = pending.get(namespace)
            if waiting is not None and sid in waiting:
                waiting.remove(sid)
                if not waiting:
                    del pending[namespace]

    def get_rooms(self, sid, namespace):
        return [room for room in self._client_rooms.get((namespace, sid), ()) if room is not None]
