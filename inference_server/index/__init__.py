"""The motion library index: memory-mapped patch store, exact and fast MaxSim search, build/update.

MotionIndex.load(path, retriever) opens an index (index/store.py); build_index embeds a
library into one (index/build.py); index/qdrant.py pushes it to Qdrant and searches through it.
"""
from inference_server.index.build import build_index
from inference_server.index.search import FastPath, Hit
from inference_server.index.store import MotionIndex

__all__ = ["MotionIndex", "Hit", "FastPath", "build_index"]
