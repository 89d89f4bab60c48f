"""The session's images, masks and edit history, held in memory and bounded.

Nothing is written to disk and nothing is read from a path the browser names: the page refers to
an image or a mask by the random id this store gave it. When the store holds more than
``max_bytes``, the least recently used entries go first (the page then says the image is no
longer held and asks to load it again).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from mme.client.images import EncodedImage

CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
MAX_HISTORY = 20


class NotHeld(LookupError):
    """The id is unknown or was evicted."""


@dataclass(frozen=True)
class StoredImage:
    """An image of the session: ``encoded`` is what goes to the models, ``data`` what the page
    shows and downloads (the same bytes unless a smaller working copy had to be made)."""

    id: str
    name: str
    encoded: EncodedImage
    data: bytes
    content_type: str
    note: str = ""

    @property
    def nbytes(self) -> int:
        return len(self.data) + (len(self.encoded.data) if self.encoded.data is not self.data else 0)

    def describe(self) -> dict:
        width, height = self.encoded.size
        return {"id": self.id, "name": self.name, "width": width, "height": height, "bytes": len(self.data),
                "url": f"/api/images/{self.id}", "note": self.note}


@dataclass(frozen=True)
class StoredMask:
    """A selection's mask (bool, the image's size) on image ``image_id``."""

    id: str
    image_id: str
    array: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)


@dataclass
class Session:
    """Everything the page made in this server's lifetime (see the module docstring)."""

    max_bytes: int = 1 << 30
    _items: OrderedDict = field(default_factory=OrderedDict)
    _history: list = field(default_factory=list)
    _bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _put(self, item) -> None:
        with self._lock:
            self._items[item.id] = item
            self._bytes += item.nbytes
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes

    def _get(self, item_id: str, kind: type, what: str):
        with self._lock:
            item = self._items.get(item_id)
            if not isinstance(item, kind):
                raise NotHeld(f"this {what} is no longer held by the server (it keeps the session's latest "
                              f"{self.max_bytes >> 20} MiB of images): load the image again")
            self._items.move_to_end(item_id)
            return item

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(12)

    def add_image(self, encoded: EncodedImage, name: str, data: bytes | None = None, fmt: str = "PNG",
                  note: str = "") -> StoredImage:
        """Hold ``encoded`` (sent to the models); ``data`` in format ``fmt`` is what the page shows
        (default: the encoded bytes)."""
        item = StoredImage(id=self.new_id(), name=name, encoded=encoded, data=encoded.data if data is None else data,
                           content_type=CONTENT_TYPES[fmt], note=note)
        self._put(item)
        return item

    def image(self, image_id: str) -> StoredImage:
        return self._get(image_id, StoredImage, "image")

    def add_mask(self, image_id: str, array: np.ndarray) -> StoredMask:
        item = StoredMask(id=self.new_id(), image_id=image_id, array=array)
        self._put(item)
        return item

    def mask(self, mask_id: str) -> StoredMask:
        return self._get(mask_id, StoredMask, "selection")

    def add_history(self, entry: dict) -> dict:
        """Record a finished edit (newest first, at most :data:`MAX_HISTORY`)."""
        entry = {**entry, "time": time.time()}
        with self._lock:
            self._history.insert(0, entry)
            del self._history[MAX_HISTORY:]
        return entry

    def history(self) -> list[dict]:
        """The edits whose result is still held, newest first."""
        with self._lock:
            return [e for e in self._history if isinstance(self._items.get(e["result"]["id"]), StoredImage)]
