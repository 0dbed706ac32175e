"""Global models staged on the combiner's disk: fetched from the model repository once per model id.

Every client of a round downloads the same local copy, so a model crosses the repository boundary once
per combiner, not once per client. The aggregate a round writes is adopted as staged too: with one
combiner, the next round's global model is already here. Only the newest few models are kept, and
the models held by an asynchronous session (the versions its clients still train from).

A small model is also kept in memory as the framed chunks Download sends (proto/chunks.py), read
once per model rather than once per client: at 1,000 clients a round on a 1 MB model, the per-client
open/read/close hops and chunk copies of each download were a large share of the event loop's time.
"""

import asyncio
import contextlib
import logging
from collections import Counter, OrderedDict
from pathlib import Path
from typing import BinaryIO

from scaleout.aggregation.npzfile import ArraySpec, read_specs
from scaleout.proto.chunks import frame
from scaleout.store import validate_id
from scaleout.store.repository import ModelRepository

log = logging.getLogger(__name__)

KEEP = 3  # staged models kept: the current global model, the aggregate just written, and one spare
# Download chunks: 1 MiB moves ~1.2 GB/s per stream on loopback, as 4 MiB does, at a quarter of the
# memory per open download (modelservice.py). Well under gRPC's default 4 MiB message limit.
CHUNK_SIZE = 1024 * 1024
# Models up to this size are held in memory as framed chunks (at most KEEP of them: <= 48 MiB).
CACHED_BYTES = 16 * 1024 * 1024


class StagedModels:
    """Local copies of models under ``directory``, fetched once each, evicted oldest first."""

    def __init__(self, repository: ModelRepository, directory: Path, keep: int = KEEP) -> None:
        self._repository = repository
        self._directory = directory
        self._keep = keep
        self._staged: OrderedDict[str, asyncio.Future[Path]] = OrderedDict()
        self._held: Counter[str] = Counter()  # model id -> holds: never evicted while held
        self._chunks: dict[str, asyncio.Future[list[bytes] | None]] = {}  # model id -> framed chunks
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, model_id: str) -> Path | None:
        """The staged file of a model, or None if it is not (or not yet) staged."""
        task = self._staged.get(model_id)
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    async def stage(self, model_id: str) -> Path:
        """Fetch the model once (concurrent callers share the fetch); NotFound if the repository lacks it."""
        validate_id(model_id)
        task = self._staged.get(model_id)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = asyncio.create_task(self._fetch(model_id), name=f"stage-{model_id}")
            self._staged[model_id] = task
            self._evict()
        self._staged.move_to_end(model_id)
        # shield: a cancelled caller must not cancel the fetch other callers share
        return await asyncio.shield(task)

    def adopt(self, model_id: str, source: Path) -> Path:
        """Move a file this combiner wrote (its aggregate) into the staged models without a fetch."""
        target = self._directory / f"{validate_id(model_id)}.npz"
        source.replace(target)
        future: asyncio.Future[Path] = asyncio.get_running_loop().create_future()
        future.set_result(target)
        self._staged[model_id] = future
        self._chunks.pop(model_id, None)
        self._evict()
        return target

    def hold(self, model_id: str) -> None:
        """Keep the model staged until as many ``release`` calls (beyond the newest ``keep``)."""
        self._held[model_id] += 1

    def release(self, model_id: str) -> None:
        """Undo one ``hold``; a model no longer held is evicted now unless among the newest ``keep``."""
        self._held[model_id] -= 1
        if self._held[model_id] <= 0:
            del self._held[model_id]
            self._evict()

    async def specs(self, model_id: str) -> list[ArraySpec]:
        """Shapes and dtypes of a staged model's arrays, read from the npy headers off the loop."""
        return await asyncio.to_thread(read_specs, await self.stage(model_id))

    async def cached_chunks(self, model_id: str) -> list[bytes] | None:
        """A staged model's download chunks, framed, read once and shared by every download; None for a
        model larger than CACHED_BYTES (streamed from its file instead) or one not staged."""
        path = self.path(model_id)
        if path is None:
            return None
        chunks = self._chunks.get(model_id)
        if chunks is None or (chunks.done() and (chunks.cancelled() or chunks.exception() is not None)):
            chunks = self._chunks[model_id] = asyncio.ensure_future(asyncio.to_thread(_read_framed, path))
        return await asyncio.shield(chunks)

    async def _fetch(self, model_id: str) -> Path:
        target = self._directory / f"{model_id}.npz"
        size = await asyncio.to_thread(self._repository.get_model_to_file, model_id, target)
        log.info("staged model %s (%d bytes)", model_id, size)
        return target

    def _evict(self) -> None:
        """Delete the oldest fetched models beyond ``keep``; a download already open keeps reading.

        A fetch still running is never evicted: its callers wait on it; nor is a held model.
        """
        for model_id in [m for m, f in self._staged.items() if f.done() and m not in self._held]:
            if len(self._staged) <= self._keep:
                return
            del self._staged[model_id]
            self._chunks.pop(model_id, None)
            with contextlib.suppress(FileNotFoundError):
                (self._directory / f"{model_id}.npz").unlink()


def read_framed(stream: BinaryIO) -> bytes:
    """The file's next download chunk, framed as a FileChunk; b"" at its end. Blocking."""
    return frame(stream.read(CHUNK_SIZE))


def _read_framed(path: Path) -> list[bytes] | None:
    """The whole file as framed chunks, or None when it is larger than CACHED_BYTES. Blocking."""
    if path.stat().st_size > CACHED_BYTES:
        return None
    with open(path, "rb") as stream:
        return list(iter(lambda: read_framed(stream), b""))
