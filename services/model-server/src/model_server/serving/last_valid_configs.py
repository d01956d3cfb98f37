"""The last valid ``config.json`` of each model, shared by the workers of one replica.

An invalid ``config.json`` keeps the model's last valid configuration in force. Remembered by
each process alone, that would split a replica: a worker forked later (a renewal,
GUNICORN_MAX_REQUESTS, a crash) starts from what the master read at boot, so while the file is
invalid a rollback pinned in it would hold on the old workers and be undone on the new one.

So every worker that reads a valid ``config.json`` (or finds none: the default) writes its
validated form here, one file per model, replaced in one rename; a worker that finds the file
invalid takes the configuration from here, where the last worker to read a valid one left it.
All the workers of a replica then follow the same configuration, whenever they were forked.
The folder is private to the replica (gunicorn.conf.py makes it, in memory where /dev/shm
exists, and removes it at exit); only the server's workers write in it.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from pydantic import ValidationError

from ..repository.model_config import ModelConfig

log = logging.getLogger(__name__)

# A validated config written back is small (its JSON is at most a few KiB, whatever the original's layout);
# anything larger here was not written by a worker.
MAX_RECORD_BYTES = 1 << 20


class LastValidConfigs:
    """Each model's last valid configuration, read and written in ``folder`` (None: this process only)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def remember(self, name: str, config: ModelConfig) -> None:
        """Record ``config`` as the model's last valid one (the file is rewritten only when it changes)."""
        if self.folder is None:
            return
        text = config.model_dump_json(exclude_none=True).encode()
        path = self.folder / f"{name}.json"
        try:
            if _read(path) == text:
                return
            temporary = self.folder / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
            temporary.write_bytes(text)
            os.replace(temporary, path)
        except OSError as exc:
            log.warning(
                "cannot share the model's config with the other workers", extra={"model": name, "reason": str(exc)}
            )

    def recall(self, name: str) -> ModelConfig | None:
        """The model's last valid configuration as the workers last recorded it; None if none did."""
        if self.folder is None:
            return None
        try:
            text = _read(self.folder / f"{name}.json")
            return None if text is None else ModelConfig.model_validate_json(text)
        except (OSError, ValidationError) as exc:
            log.warning("cannot read the model's shared config", extra={"model": name, "reason": str(exc)})
            return None


def _read(path: Path) -> bytes | None:
    try:
        with path.open("rb") as handle:
            return handle.read(MAX_RECORD_BYTES)
    except FileNotFoundError:
        return None
