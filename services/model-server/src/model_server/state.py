"""What a running app holds: its settings, the live models and their poller, and the worker's two
request-path helpers, the micro-batcher and the shadow runner."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Settings
from .serving.batching import MicroBatcher
from .serving.live_models import LiveModels
from .serving.repository_poller import RepositoryPoller
from .serving.shadow import ShadowRunner


@dataclass(frozen=True)
class ServerState:
    settings: Settings
    live_models: LiveModels
    poller: RepositoryPoller
    shadow: ShadowRunner
    batcher: MicroBatcher | None  # one per worker, for every version; None: each request calls its model
