"""Caches of explanation results, so moving the opacity slider or switching tabs reruns nothing.

* :func:`image_digest` — a short content hash of arrays, the image part of every cache key.
* :class:`HeatmapCache` — a small thread-safe LRU of engine results (probabilities and heatmaps
  per model) or of whole Explain answers.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import numpy as np


def image_digest(*arrays: np.ndarray) -> str:
    """A short content hash of arrays (shape, dtype and bytes), for cache keys."""
    digest = hashlib.sha1()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


class HeatmapCache:
    """Thread-safe LRU: explanation results keyed by (model id, image digest, target, LRP
    settings), or whole Explain answers (:func:`explorer.handlers.explain.answer_key`)."""

    def __init__(self, capacity: int = 64) -> None:
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Any | None:
        """The cached value for ``key`` (refreshing its recency), or None."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: tuple, value: Any) -> None:
        """Store ``value``; the least recently used item goes when over capacity."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
