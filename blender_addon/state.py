"""What the add-on remembers between operator calls and timer ticks, in this Blender session.

None of it is saved in the .blend file. Requests remember scene and object *names*, never
bpy references (undo and file loads invalidate those).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Request:
    """A request waiting for its reply: its op (a name of bridge.protocol.OPS), the scene it
    was made in, what the reply's handler needs (object names, the query...), and its
    channel: requests of one op that must not replace each other (the previews of several
    motions, the clips of a sequence) go on channels of their own."""
    op: str
    scene: str
    data: dict = field(default_factory=dict)
    channel: str = ""


@dataclass
class SequenceBuild:
    """An Apply Sequence waiting for its clips: one (positions, fps) per segment as they
    arrive (None until then), and what the final apply needs."""
    id: str
    parts: list
    data: dict


@dataclass
class Previews:
    """Result previews: the bpy.utils.previews collection and the folder of its PNG files
    (both made on first use), the keys already asked for, and whether the server answers
    `preview` at all (None: not known yet; False: an older server, previews hidden)."""
    collection: object = None
    folder: str = ""
    asked: set = field(default_factory=set)
    supported: bool | None = None


@dataclass
class Connection:
    """The one client of the add-on and the settings it was made with (address, timeout,
    retries, key files): other settings make a new client."""
    client: object = None
    settings: tuple | None = None


connection = Connection()
pending: dict[str, Request] = {}              # request id -> the request
latest: dict[tuple[str, str, str], str] = {}  # (scene, op, channel) -> newest request id; older ones are stale
sequences: dict[str, SequenceBuild] = {}      # scene -> the Apply Sequence waiting for its clips
previews = Previews()
relevance: dict[tuple[str, str], dict] = {}   # (query, motion_id) -> explain result + relevance array
server_processes: list = []                   # the local server started from the panel (0 or 1)


def forget_requests() -> None:
    """Drop every request still waiting: their replies will be ignored as stale."""
    pending.clear()
    latest.clear()
    sequences.clear()
