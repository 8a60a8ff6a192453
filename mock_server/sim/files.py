"""ZeroDB file storage, in memory and bounded: what ``POST /api/v1/public/zerodb/files/upload`` keeps.

004 "For AI Agents": "Base64 responses can be piped directly to file storage via POST
/api/v1/public/zerodb/files/upload"; nothing else of it is documented. The store keeps at most
:data:`MAX_FILES` files and :data:`MAX_TOTAL_BYTES` bytes, dropping the oldest first; one file may
be at most :data:`MAX_FILE_BYTES`.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

#: Largest file the store accepts, in bytes (10 MiB; 004 gives no limit).
MAX_FILE_BYTES = 10 * 1024 * 1024
#: Bytes kept at once across all files (64 MiB); the oldest files go first.
MAX_TOTAL_BYTES = 64 * 1024 * 1024
#: Files kept at once; the oldest go first.
MAX_FILES = 256


@dataclass(frozen=True)
class StoredFile:
    """One stored file of ``api_key``: ``created_at`` in s since the epoch, ``content`` its bytes."""

    file_id: str
    api_key: str
    filename: str
    content_type: str
    content: bytes
    created_at: float

    @property
    def size_bytes(self) -> int:
        """The file's size in bytes."""
        return len(self.content)


class FileTooLarge(ValueError):
    """A file over :data:`MAX_FILE_BYTES` (``limit``, in bytes)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than {limit} bytes")
        self.limit = limit


class FileStore:
    """A bounded in-memory store of uploaded files (see the module docstring). Thread-safe."""

    def __init__(self, max_file_bytes: int = MAX_FILE_BYTES, max_total_bytes: int = MAX_TOTAL_BYTES,
                 max_files: int = MAX_FILES, clock: Callable[[], float] = time.time) -> None:
        self.max_file_bytes = max_file_bytes
        self._max_total_bytes = max_total_bytes
        self._max_files = max_files
        self._clock = clock
        self._files: OrderedDict[str, StoredFile] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, api_key: str, filename: str, content_type: str, content: bytes) -> StoredFile:
        """Store ``content`` for ``api_key``; returns it with a fresh ``file_<24 hex>`` id.

        Raises :class:`FileTooLarge` over the per-file limit.
        """
        if len(content) > self.max_file_bytes:
            raise FileTooLarge(self.max_file_bytes)
        stored = StoredFile(f"file_{secrets.token_hex(12)}", api_key, filename, content_type, content, self._clock())
        with self._lock:
            self._files[stored.file_id] = stored
            self._bytes += stored.size_bytes
            while len(self._files) > self._max_files or self._bytes > self._max_total_bytes:
                _, dropped = self._files.popitem(last=False)
                self._bytes -= dropped.size_bytes
        return stored

    def get(self, api_key: str, file_id: str) -> StoredFile | None:
        """The file ``file_id`` if ``api_key`` stored it and it is still kept; else None."""
        with self._lock:
            stored = self._files.get(file_id)
        return stored if stored is not None and stored.api_key == api_key else None

    @property
    def total_bytes(self) -> int:
        """Bytes currently kept."""
        return self._bytes
