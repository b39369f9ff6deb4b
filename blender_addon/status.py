"""The panel's status line (scene.t2m.status, error, busy): every outcome ends as one line."""
from __future__ import annotations


def set_status(scene, text: str, busy: bool = False) -> None:
    scene.t2m.status = text
    scene.t2m.busy = busy
    if busy or text:
        scene.t2m.error = ""


def fail(scene, message: str) -> None:
    scene.t2m.error = message
    scene.t2m.status = ""
    scene.t2m.busy = False
