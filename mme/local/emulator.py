"""What SageMaker does in front of the container of a multi-model endpoint instance, on this machine.

For every ``InvokeEndpoint`` with a ``TargetModel``, :class:`EndpointEmulator`:

- serves a loaded model at once (a cache hit), or loads it first while the request waits (a
  miss): the archive comes from the model source (the endpoint's ``ModelDataUrl`` prefix + the
  ``TargetModel``: a local folder or an S3 prefix), is unpacked into
  ``<models dir>/<model_name>/model`` (``model_name`` is an opaque id derived from the
  ``TargetModel``, as SageMaker's is) and registered through the container's Load Model API
  (:class:`mme.local.container_api.ContainerApi`);
- keeps the loaded models within a memory budget: a model's size is what its TorchServe workers
  hold (resident memory plus their GPU memory, measured after the load). Before a load the least
  recently used models are unloaded until the new one should fit (its last measured size, or the
  archive's size plus the smallest worker overhead seen so far); after the load, again until the
  total fits. A 507 from the container (out of memory) for a load or an invocation unloads the
  least recently used idle model and repeats the call, as SageMaker does;
- unloads a model only once its requests in flight are answered;
- counts per model: hits, misses, loads, unloads, worker restarts, and each load's stages
  (download, unpack, load: the container's Load Model call = worker start, handler import and
  ``initialize``).

Errors of the platform (unknown ``TargetModel``, a load that fails) are answered with the same JSON
shape as the handlers' errors: ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import tarfile
import threading
import time
import urllib.error
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

from mme.model_memory import process_memory_bytes

UNLOADED, LOADING, LOADED, UNLOADING = "unloaded", "loading", "loaded", "unloading"
#: How long a failed load is answered from memory before the next request tries again.
LOAD_FAILURE_MEMORY_S = 10.0
_TARGET_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,1023}$")


class Reply(NamedTuple):
    """An answer to an invocation: HTTP status, content type, body, and whether the platform
    (not the model) answered."""

    status: int
    content_type: str
    body: bytes
    platform: bool = False


class PlatformError(Exception):
    """A failure of the platform, not of the model: answered as ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def reply(self) -> Reply:
        """This error as an HTTP answer."""
        body = json.dumps({"error": {"code": self.code, "message": self.message}}).encode()
        return Reply(self.status, "application/json", body, platform=True)


def opaque_model_name(target_model: str) -> str:
    """The container's ``model_name`` for a ``TargetModel``: opaque, as SageMaker's."""
    return hashlib.sha256(target_model.encode()).hexdigest()[:32]


def check_target_model(target_model: str) -> str:
    """``target_model`` if it is a relative object name under the model prefix, else PlatformError."""
    if not target_model or not _TARGET_MODEL.match(target_model) or ".." in target_model.split("/"):
        raise PlatformError(400, "invalid_target_model",
                            f"TargetModel {target_model[:100]!r} is not a relative archive name such as 'sam-<digest>.tar.gz'")
    return target_model


def unpack(archive: Path, destination: Path) -> int:
    """Extract a ``.tar.gz`` into ``destination`` in one streaming pass (members may not leave it:
    tarfile's ``data`` filter); returns the bytes written."""
    destination.mkdir(parents=True, exist_ok=True)
    total = 0
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            tar.extract(member, destination, filter="data")
            total += member.size if member.isfile() else 0
    return total


@dataclass
class LoadStages:
    """Seconds and bytes of one load."""

    download_s: float = 0.0
    unpack_s: float = 0.0
    load_s: float = 0.0
    archive_bytes: int = 0
    unpacked_bytes: int = 0
    attempts: int = 0


@dataclass
class ModelSlot:
    """What the platform knows of one ``TargetModel``."""

    target_model: str
    model_name: str
    state: str = UNLOADED
    inflight: int = 0
    hits: int = 0
    misses: int = 0
    loads: int = 0
    unloads: int = 0
    worker_restarts: int = 0
    last_used: float = 0.0
    size_bytes: int | None = None
    known_size: int | None = None
    worker_pids: tuple[int, ...] = ()
    last_load: LoadStages | None = None
    failure: tuple[float, PlatformError] | None = field(default=None, repr=False)

    def view(self, now: float) -> dict:
        """JSON-able summary for status."""
        return {"target_model": self.target_model, "model_name": self.model_name, "state": self.state,
                "size_bytes": self.size_bytes, "last_size_bytes": self.known_size, "hits": self.hits,
                "misses": self.misses, "loads": self.loads, "unloads": self.unloads,
                "worker_restarts": self.worker_restarts, "inflight": self.inflight,
                "worker_pids": list(self.worker_pids),
                "idle_s": round(now - self.last_used, 1) if self.last_used else None,
                "last_load": asdict(self.last_load) if self.last_load else None}


class EndpointEmulator:
    """The platform side of a multi-model endpoint instance (see the module docstring).

    ``container``: a started :class:`~mme.local.container_api.ContainerApi`; ``source``: a
    :mod:`mme.model_data` source (the ``ModelDataUrl``); ``models_dir``: where archives are unpacked;
    ``memory_budget_bytes``: what the loaded models may hold together. Thread-safe: one instance
    serves concurrent requests.
    """

    def __init__(self, container, source, models_dir: str | Path, memory_budget_bytes: int, *,
                 invoke_timeout: float = 300.0, load_timeout: float = 900.0, drain_timeout: float = 300.0,
                 on_event: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic):
        self.container = container
        self.source = source
        self.models_dir = Path(models_dir)
        self.memory_budget_bytes = int(memory_budget_bytes)
        self.invoke_timeout, self.load_timeout, self.drain_timeout = invoke_timeout, load_timeout, drain_timeout
        self._event = on_event or (lambda message: None)
        self._clock = clock
        self._slots: dict[str, ModelSlot] = {}
        self._cond = threading.Condition()
        self._load_lock = threading.Lock()  # one load or unload at a time
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self._adopt_loaded()

    # ------------------------------------------------------------------ invocations
    def invoke(self, target_model: str, body: bytes, content_type: str = "application/json") -> Reply:
        """One ``InvokeEndpoint`` for ``target_model``: load it if needed, then the container's
        invoke; the container's answer (or the platform's error) comes back."""
        try:
            slot = self._slot(check_target_model(target_model))
            for _ in range(2):  # a second time when the container lost the model under us
                self._acquire(slot)
                try:
                    reply = self._invoke_loaded(slot, body, content_type)
                finally:
                    self._release(slot)
                if reply is not None:
                    return reply
            raise PlatformError(502, "model_lost", f"{target_model} disappeared from the container twice")
        except PlatformError as err:
            return err.reply()

    def _invoke_loaded(self, slot: ModelSlot, body: bytes, content_type: str) -> Reply | None:
        while True:
            try:
                status, headers, data = self.container.invoke(slot.model_name, body, slot.target_model,
                                                              content_type, self.invoke_timeout)
            except (urllib.error.URLError, OSError) as exc:
                raise PlatformError(502, "container_unavailable",
                                    f"the container does not answer: {getattr(exc, 'reason', exc)}") from None
            if status == 507 and self._free_memory(exclude=slot):
                continue
            if status == 404 and b"ModelNotFoundException" in data[:300]:
                self._forget(slot)
                return None
            kind = next((v for k, v in headers.items() if k.lower() == "content-type"), "application/json")
            return Reply(status, kind, data)

    def _acquire(self, slot: ModelSlot) -> None:
        waited = False
        while True:
            with self._cond:
                if slot.state == LOADED:
                    slot.inflight += 1
                    slot.last_used = self._clock()
                    if waited:
                        slot.misses += 1
                    else:
                        slot.hits += 1
                    return
                if slot.failure and self._clock() - slot.failure[0] < LOAD_FAILURE_MEMORY_S:
                    raise slot.failure[1]
            waited = True
            with self._load_lock:
                with self._cond:
                    if slot.state == LOADED:
                        continue
                    slot.state = LOADING
                try:
                    self._load(slot)
                except PlatformError as err:
                    with self._cond:
                        slot.state, slot.failure = UNLOADED, (self._clock(), err)
                        self._cond.notify_all()
                    raise
                except BaseException:
                    with self._cond:
                        slot.state = UNLOADED
                        self._cond.notify_all()
                    raise

    def _release(self, slot: ModelSlot) -> None:
        with self._cond:
            slot.inflight -= 1
            slot.last_used = self._clock()
            self._cond.notify_all()

    def _forget(self, slot: ModelSlot) -> None:
        """The container no longer has the model (unloaded behind the platform's back)."""
        with self._cond:
            if slot.state == LOADED:
                slot.state, slot.size_bytes, slot.worker_pids = UNLOADED, None, ()
                self._event(f"{slot.target_model} is no longer in the container; it loads again")

    # ------------------------------------------------------------------ loading
    def _load(self, slot: ModelSlot) -> None:
        """Download, unpack and register ``slot`` (load lock held, state LOADING)."""
        self._make_room(slot, self._estimate(slot))
        root = self.models_dir / slot.model_name
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        stages = LoadStages()
        started = time.perf_counter()
        try:
            archive = self.source.fetch(slot.target_model, root)
            stages.download_s = time.perf_counter() - started
            stages.archive_bytes = archive.stat().st_size
            started = time.perf_counter()
            stages.unpacked_bytes = unpack(archive, root / "model")
            stages.unpack_s = time.perf_counter() - started
            if archive.parent == root:
                archive.unlink()
            (root / "target_model").write_text(slot.target_model)
            started = time.perf_counter()
            self._register(slot, root / "model", stages)
            stages.load_s = time.perf_counter() - started
        except FileNotFoundError:
            shutil.rmtree(root, ignore_errors=True)
            raise PlatformError(404, "model_not_found",
                                f"no archive {slot.target_model!r} in {self.source.describe()}") from None
        except (OSError, tarfile.TarError) as exc:
            shutil.rmtree(root, ignore_errors=True)
            raise PlatformError(500, "model_download_failed", f"{slot.target_model}: {exc}") from None
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        pids = tuple(self.container.worker_pids(slot.model_name))
        size = process_memory_bytes(pids)
        with self._cond:
            slot.state, slot.size_bytes, slot.known_size, slot.worker_pids = LOADED, size, size, pids
            slot.loads += 1
            slot.last_load, slot.failure = stages, None
            slot.last_used = self._clock()
            self._cond.notify_all()
        self._event(f"loaded {slot.target_model} ({size / 2**20:,.0f} MiB) in "
                    f"{stages.download_s + stages.unpack_s + stages.load_s:.1f}s")
        self._make_room(slot, 0)

    def _register(self, slot: ModelSlot, url: Path, stages: LoadStages) -> None:
        while True:
            stages.attempts += 1
            try:
                status, data = self.container.load_model(slot.model_name, url, self.load_timeout)
            except (urllib.error.URLError, OSError) as exc:
                raise PlatformError(502, "container_unavailable",
                                    f"the container does not answer: {getattr(exc, 'reason', exc)}") from None
            if status in (200, 409):
                return
            if status == 507 and self._evict_lru(exclude=slot, wait=True):
                continue
            message = _torchserve_message(data)
            with contextlib.suppress(urllib.error.URLError, OSError):
                # TorchServe keeps a model whose workers failed and retries them in the background
                self.container.unload_model(slot.model_name)
            raise PlatformError(507 if status == 507 else 500, "model_load_failed",
                                f"the container could not load {slot.target_model}: HTTP {status} {message} "
                                f"(logs: {self.container.log_dir})")

    def _estimate(self, slot: ModelSlot) -> int:
        """Bytes the model should need once loaded (see the module docstring)."""
        if slot.known_size:
            return slot.known_size
        try:
            archive = self.source.size(slot.target_model)
        except FileNotFoundError:
            raise PlatformError(404, "model_not_found",
                                f"no archive {slot.target_model!r} in {self.source.describe()}") from None
        with self._cond:
            overheads = [s.known_size - s.last_load.unpacked_bytes for s in self._slots.values()
                         if s.known_size and s.last_load]
        return archive + max(0, min(overheads, default=0))

    # ------------------------------------------------------------------ memory
    def _make_room(self, slot: ModelSlot, needed: int) -> None:
        """Unload least recently used models until ``needed`` more bytes fit (load lock held)."""
        while self._used_bytes() + needed > self.memory_budget_bytes:
            if not self._evict_lru(exclude=slot, wait=True):
                return

    def _free_memory(self, exclude: ModelSlot) -> bool:
        """After a 507: unload the least recently used idle model; False when none could go."""
        if not self._load_lock.acquire(timeout=1.0):
            return False  # a load or unload is under way; the caller answers 507
        try:
            return self._evict_lru(exclude=exclude, wait=False)
        finally:
            self._load_lock.release()

    def _evict_lru(self, exclude: ModelSlot, wait: bool) -> bool:
        with self._cond:
            candidates = [s for s in self._slots.values()
                          if s is not exclude and s.state == LOADED and (wait or s.inflight == 0)]
            if not candidates:
                return False
            victim = min(candidates, key=lambda s: s.last_used)
        return self._unload(victim, reason=f"to make room for {exclude.target_model}")

    def _unload(self, slot: ModelSlot, reason: str) -> bool:
        """Unload ``slot`` once its requests are answered (load lock held)."""
        with self._cond:
            if slot.state != LOADED:
                return False
            slot.state = UNLOADING
            deadline = self._clock() + self.drain_timeout
            while slot.inflight and self._clock() < deadline:
                self._cond.wait(timeout=max(0.0, deadline - self._clock()))
            if slot.inflight:
                slot.state = LOADED
                self._cond.notify_all()
                return False
        try:
            status, data = self.container.unload_model(slot.model_name)
        except (urllib.error.URLError, OSError):
            status, data = 0, b""
        ok = status in (200, 404)
        if ok:
            shutil.rmtree(self.models_dir / slot.model_name, ignore_errors=True)
        with self._cond:
            slot.state = UNLOADED if ok else LOADED
            if ok:
                slot.unloads += 1
                slot.size_bytes, slot.worker_pids = None, ()
            self._cond.notify_all()
        self._event(f"unloaded {slot.target_model} {reason}" if ok else
                    f"could not unload {slot.target_model}: HTTP {status} {_torchserve_message(data)}")
        return ok

    def _used_bytes(self) -> int:
        """Bytes the loaded models hold now (measured again)."""
        self._refresh()
        with self._cond:
            return sum(s.size_bytes or 0 for s in self._slots.values() if s.state in (LOADED, UNLOADING))

    def _refresh(self) -> None:
        """Measure the loaded models again; a new worker pid under a loaded model is a restart."""
        with self._cond:
            loaded = [s for s in self._slots.values() if s.state == LOADED]
        for slot in loaded:
            try:
                pids = tuple(self.container.worker_pids(slot.model_name))
            except (urllib.error.URLError, OSError):
                continue
            size = process_memory_bytes(pids) if pids else None
            with self._cond:
                if slot.state != LOADED or not pids:
                    continue
                if slot.worker_pids and set(pids) != set(slot.worker_pids):
                    slot.worker_restarts += len(set(pids) - set(slot.worker_pids))
                slot.worker_pids, slot.size_bytes = pids, size
                slot.known_size = size

    # ------------------------------------------------------------------ management
    def unload(self, target_model: str) -> bool:
        """Unload one model now (True when it was loaded)."""
        with self._cond:
            slot = self._slots.get(target_model)
        if slot is None:
            return False
        with self._load_lock:
            return self._unload(slot, reason="on request")

    def model_state(self, target_model: str) -> str:
        """``loaded``, ``loading``, ``unloading`` or ``unloaded`` (no measuring, no container call)."""
        with self._cond:
            slot = self._slots.get(target_model)
            return slot.state if slot is not None else UNLOADED

    def status(self) -> dict:
        """Budget, memory in use and every model's counters (sizes measured now)."""
        used = self._used_bytes()
        now = self._clock()
        with self._cond:
            models = [s.view(now) for s in sorted(self._slots.values(), key=lambda s: s.target_model)]
        return {"memory_budget_bytes": self.memory_budget_bytes, "used_bytes": used,
                "model_source": self.source.describe(), "models": models}

    def _slot(self, target_model: str, must_exist: bool = True) -> ModelSlot:
        """The slot of ``target_model``; a new one only for an archive the source has."""
        with self._cond:
            slot = self._slots.get(target_model)
        if slot is not None:
            return slot
        if must_exist:
            try:
                self.source.size(target_model)
            except FileNotFoundError:
                raise PlatformError(404, "model_not_found",
                                    f"no archive {target_model!r} in {self.source.describe()}") from None
            except OSError as exc:
                raise PlatformError(500, "model_download_failed", f"{target_model}: {exc}") from None
        with self._cond:
            return self._slots.setdefault(target_model, ModelSlot(target_model, opaque_model_name(target_model)))

    def _adopt_loaded(self) -> None:
        """Models this platform loaded earlier into the same container (a restarted platform)."""
        try:
            registered = set(self.container.models())
        except Exception:  # noqa: BLE001 - a container that does not answer yet: nothing to adopt
            return
        for marker in self.models_dir.glob("*/target_model"):
            name = marker.parent.name
            if name not in registered:
                shutil.rmtree(marker.parent, ignore_errors=True)
                continue
            slot = self._slot(marker.read_text().strip(), must_exist=False)
            if slot.model_name == name:
                slot.state, slot.last_used = LOADED, self._clock()
        self._refresh()


def _torchserve_message(data: bytes) -> str:
    try:
        parsed = json.loads(data)
    except ValueError:
        return data[:200].decode(errors="replace")
    if isinstance(parsed, dict):
        return str(parsed.get("message") or parsed.get("error") or parsed)[:300]
    return str(parsed)[:300]
