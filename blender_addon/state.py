"""What the add-on remembers between operator calls and timer ticks, in this Blender session.

None of it is saved in the .blend file. Requests remember scene and object *names*, never
bpy references (undo and file loads invalidate those).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Request:
    """A request waiting for its reply: its op (a name of bridge.protocol.OPS), the scene it
    was made in, and what the reply's handler needs (object names, the query...)."""
    op: str
    scene: str
    data: dict = field(default_factory=dict)


@dataclass
class Connection:
    """The one client of the add-on and the settings it was made with (address, timeout,
    retries, key files): other settings make a new client."""
    client: object = None
    settings: tuple | None = None


connection = Connection()
pending: dict[str, Request] = {}              # request id -> the request
latest: dict[tuple[str, str], str] = {}       # (scene, op) -> newest request id; older replies are stale
relevance: dict[tuple[str, str], dict] = {}   # (query, motion_id) -> explain result + relevance array
server_processes: list = []                   # the local server started from the panel (0 or 1)


def forget_requests() -> None:
    """Drop every request still waiting: their replies will be ignored as stale."""
    pending.clear()
    latest.clear()
