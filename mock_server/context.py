"""What a handler gets: the validated request (:class:`Call`) and the app's shared services."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from mock_server.catalogue import Catalogue, Model, load_catalogue
from mock_server.config import MockConfig
from mock_server.fleet import Fleet
from mock_server.fleet.ratelimit import SharedSlidingWindow
from mock_server.hosted import HostedMedia
from mock_server.journal import Journal, fleet_entry_ids
from mock_server.metrics import Metrics
from mock_server.sim import PREMIUM, FileStore, Ledger
from mock_server.sim.credits import CreditsStore, LocalCredits
from mock_server.sim.jobs import JobRunner
from mock_server.sim.latency import GpuPool, LatencySimulator
from mock_server.sim.ratelimit import SlidingWindowLog
from mock_server.sim.scripts import ScriptBook
from mock_server.sim.spend import SpendMeter
from spec import Operation


@dataclass
class Services:
    """Built once per app from :class:`MockConfig`: the catalogue, hosted media, the id sequence, the
    credits ledger (``config.ledger_path``, in memory by default), the uploaded-file store, the rate
    limiter, the latency simulator with its GPU pools, and the seeded RNG of faults."""

    config: MockConfig
    models: dict[str, Model] = field(init=False)
    catalogue: Catalogue = field(init=False)
    """The models and, with ``unknown_models.serve``, the stand-ins for ids it lacks (``catalogue.py``)."""
    hosted: HostedMedia = field(init=False, default_factory=HostedMedia)
    _id_bits: random.Random = field(init=False)
    ledger: Ledger | None = field(init=False)
    """The in-process SQLite ledger; None in a fleet (its ledger is ``fleet.ledger``)."""
    credits: CreditsStore = field(init=False)
    """The credits ledger as handlers and the control API use it (``sim/credits.py``): the SQLite
    ledger's, or the fleet's in Redis."""
    fleet: Fleet | None = field(init=False)
    """The shared state of a fleet (``state.url`` a Redis URL, ``mock_server/fleet/``); None in process."""
    shared_limiter: SharedSlidingWindow | None = field(init=False)
    """The fleet's rate limiter (``fleet/ratelimit.py``), used instead of ``limiter``; None in process."""
    spend: SpendMeter = field(init=False)
    """Gateway spend per key against ``keys[].spend_limit_usd`` (``sim/spend.py``; 402 billing_error); in a
    fleet the limited keys' spend is ``fleet.spend``'s, in Redis."""
    files: FileStore = field(init=False, default_factory=FileStore)
    limiter: SlidingWindowLog = field(init=False, default_factory=SlidingWindowLog)
    latency: LatencySimulator = field(init=False)
    gpus: GpuPool = field(init=False)
    jobs: JobRunner = field(init=False)
    """Asynchronous generations (videos, ``sim/jobs.py``); built after the ledger, whose unfinished jobs it fails."""
    journal: Journal | None = field(init=False)
    """The request journal (``journal.py``); None when ``journal.enabled`` is off or the control API,
    through which alone it is read, is."""
    scripts: ScriptBook = field(init=False)
    """Scripted upstream behaviour in force (``scripted.py``), set through the control API."""
    metrics: Metrics | None = field(init=False)
    """The Prometheus metrics (``metrics.py``); None when ``observability`` is off."""
    fault_rng: random.Random = field(init=False)
    fault_rates: dict[str, dict[str, float]] = field(init=False)
    """Fault rates by operationId then kind (``faults.py``), from ``config.faults.operations``;
    mutable: the control API (``control.py``) replaces them at run time."""

    def __post_init__(self) -> None:
        config = self.config
        self.models = load_catalogue(config.catalogue)
        unknown = config.unknown_models
        self.catalogue = Catalogue(self.models, unknown.stand_ins if unknown.serve else {})
        starting = {entry.key: entry.credits for entry in config.keys if entry.credits is not None}
        self.spend = SpendMeter({entry.key: entry.spend_limit_usd for entry in config.keys
                                 if entry.spend_limit_usd is not None})
        self.latency = LatencySimulator(config.latency.operations, config.latency.default,
                                        config.latency.time_scale, config.seed)
        self.gpus = GpuPool(config.latency.gpu_slots)
        if config.state.shared:  # a fleet: every piece of state in Redis (fleet/__init__.py)
            self.fleet = Fleet.connect(config.state.url, config.state.namespace, config.starting_credits, starting,
                                       self.gpus, self.spend)
            self.ledger, self.credits, self.jobs = None, self.fleet.ledger, self.fleet.jobs
            self.hosted, self.scripts, self.shared_limiter = self.fleet.media, self.fleet.scripts, self.fleet.limiter
        else:
            self.fleet, self.shared_limiter = None, None
            self.ledger = Ledger(config.ledger_path or ":memory:", config.starting_credits, starting_by_key=starting)
            self.credits = LocalCredits(self.ledger)
            self.jobs = JobRunner(self.ledger, self.gpus)
            self.scripts = ScriptBook()
        # read only through the control API: without it, recording would cost every request for nothing
        recording = config.journal.enabled and config.control.enabled
        ids = fleet_entry_ids() if self.fleet is not None else None
        self.journal = Journal(config.journal.size, config.journal.body_bytes, ids) if recording else None
        self.metrics = Metrics(self.gpus) if config.observability else None
        self.fault_rng = random.Random(config.seed)
        # a fleet's replicas share the seed: each draws its ids from its own sequence, or they would collide
        replica = self.fleet.replica if self.fleet is not None else ""
        self._id_bits = random.Random(f"ids:{config.seed}{replica}")
        self.fault_rates = {op: dict(rates) for op, rates in config.faults.operations.items()}

    def tier(self, api_key: str | None) -> str:
        """The configured tier of ``api_key`` (premium for a key with none; 004 "Tier: Premium only")."""
        entry = self.config.key(api_key)
        return entry.tier if entry is not None else PREMIUM

    def new_id(self, prefix: str) -> str:
        """A fresh id such as ``chatcmpl-<24 hex>``: 12 bytes of a generator seeded by the seed, so the
        sequence of ids is fixed by the seed."""
        return prefix + "-" + self._id_bits.getrandbits(96).to_bytes(12, "big").hex()


@dataclass(slots=True)
class Call:
    """One authenticated, validated request.

    ``body`` is the parsed JSON or form (None without a body); ``params`` the query, header and path
    parameters by name; ``files`` a multipart form's uploads by field name; ``state`` a per-request
    scratch dict for the stages. Treat the other fields as read-only (not frozen: a frozen dataclass
    costs a microsecond more per request to build, on the hot path).
    """

    request: Request
    operation: Operation
    body: Any
    api_key: str | None
    services: Services
    params: Mapping[str, Any] = field(default_factory=dict)
    files: Mapping[str, list[UploadFile]] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    """What a pipeline stage keeps between its ``before`` and ``after`` (see ``stages/base.py``)."""


Handler = Callable[[Call], Awaitable[Response]]
