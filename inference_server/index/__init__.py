"""The motion library index: memory-mapped patch store, exact and fast MaxSim search, build/update.

MotionIndex.load(path, retriever) opens an index (index/store.py); build_index embeds a
library into one (index/build.py); index/qdrant.py pushes it to Qdrant and searches through it;
index/manifest.py reads what an index says about itself without torch. The names below are
imported on first use, so that the manifest can be read without loading torch.
"""
import importlib

_HOMES = {"MotionIndex": "store", "Hit": "search", "FastPath": "search", "build_index": "build"}
__all__ = list(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
