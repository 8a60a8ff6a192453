"""What a handler gets: the validated request (:class:`Call`) and the app's shared services."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from mock_server.catalogue import Model, load_catalogue
from mock_server.config import MockConfig
from mock_server.hosted import HostedMedia
from mock_server.sim import FileStore, Ledger
from spec import Operation


@dataclass
class Services:
    """Built once per app from :class:`MockConfig`: the catalogue, hosted media, the id sequence, the
    credits ledger (``config.ledger_path``, in memory by default) and the uploaded-file store."""

    config: MockConfig
    models: dict[str, Model] = field(init=False)
    hosted: HostedMedia = field(init=False, default_factory=HostedMedia)
    _ids: itertools.count[int] = field(init=False, default_factory=itertools.count)
    ledger: Ledger = field(init=False)
    files: FileStore = field(init=False, default_factory=FileStore)

    def __post_init__(self) -> None:
        self.models = load_catalogue(self.config.catalogue)
        self.ledger = Ledger(self.config.ledger_path or ":memory:", self.config.starting_credits)

    def new_id(self, prefix: str) -> str:
        """A fresh id such as ``chatcmpl-<24 hex>``; the sequence is fixed by the seed."""
        digest = hashlib.sha256(f"{self.config.seed}:{next(self._ids)}".encode()).hexdigest()
        return f"{prefix}-{digest[:24]}"


@dataclass(frozen=True)
class Call:
    """One authenticated, validated request.

    ``body`` is the parsed JSON or form (None without a body); ``params`` the query, header and path
    parameters by name; ``files`` a multipart form's uploads by field name.
    """

    request: Request
    operation: Operation
    body: Any
    api_key: str | None
    services: Services
    params: Mapping[str, Any] = field(default_factory=dict)
    files: Mapping[str, list[UploadFile]] = field(default_factory=dict)


Handler = Callable[[Call], Awaitable[Response]]
