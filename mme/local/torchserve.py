"""A local TorchServe (0.12) lifecycle helper: start, ping, register, call, unregister, stop.

Used by the handler tests and by ``mme local``. One :class:`LocalServer` owns a private working
directory holding the model store, logs, ``config.properties``, the ``key_file.json`` TorchServe
writes (token auth stays ON, as TorchServe 0.12 defaults) and a private temp dir. Everything it
starts runs in its own process session, so :meth:`LocalServer.stop` can make sure no process is
left behind without touching anybody else's. Several instances can run side by side: ports are
free ports on 127.0.0.1 and the pid file, Java temp dir and worker sockets live in the private
temp dir (TorchServe's defaults, ``/tmp/.model_server.pid`` and ``/tmp/.ts.sock.9000``, would
collide).

Standard library only (urllib for HTTP).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from mme.local.processes import ProcessGroupError, alive, free_port, group_alive, stop_process_group

STATE_FILE = "local_server.json"


class LocalServerError(RuntimeError):
    """TorchServe failed to start/stop or a management call failed (message includes the reason)."""


class LocalServer:
    """One TorchServe process tree on 127.0.0.1 with a private working directory.

    ``workdir``: where the store/logs/keys go (a new temp dir when None; removed by
    :meth:`stop` only if this object created it). ``config``: extra ``config.properties``
    entries (e.g. ``{"max_request_size": 20000000}``). ``torchserve``: the launcher script
    (default: the one next to this Python). Use as a context manager or call :meth:`start` /
    :meth:`stop`.
    """

    def __init__(self, workdir: str | os.PathLike | None = None, *, config: dict | None = None,
                 torchserve: str | None = None, start_timeout: float = 120.0, host: str = "127.0.0.1"):
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="mme-torchserve-")).resolve()
        self.host = host
        self.extra_config = dict(config or {})
        self.torchserve = torchserve or self._default_launcher()
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.pgid: int | None = None
        self.ports: dict[str, int] = {}
        self._keys: tuple[int, dict] | None = None  # (key_file.json mtime_ns, keys)
        #: TorchServe's token authorization is on (``key_file.json`` holds the keys every call sends)
        self.uses_tokens = True
        self._renew_lock = threading.Lock()

    # ------------------------------------------------------------------ paths / urls
    @property
    def model_store(self) -> Path:
        """Directory TorchServe registers models from."""
        return self.workdir / "model_store"

    @property
    def tmp_dir(self) -> Path:
        """Private TMPDIR/TEMP (pid file, Java temp dir, worker sockets)."""
        return self.workdir / "tmp"

    @property
    def log_dir(self) -> Path:
        """TorchServe's logs: its console output (``torchserve.out``) and, with TorchServe's own
        logging configuration, its log files (ts_log.log, model_log.log, ...)."""
        return self.workdir / "logs"

    @property
    def console_log(self) -> Path:
        """TorchServe's stdout and stderr since its last start (the previous start's is
        ``torchserve.out.1``): with ``container/log4j2.xml`` its whole log, the request lines of the
        handlers included."""
        return self.log_dir / "torchserve.out"

    @property
    def key_file(self) -> Path:
        """``key_file.json``, which TorchServe writes into its working directory."""
        return self.workdir / "key_file.json"

    @property
    def inference_url(self) -> str:
        """Base URL of the inference API."""
        return f"http://{self.host}:{self.ports['inference']}"

    @property
    def management_url(self) -> str:
        """Base URL of the management API."""
        return f"http://{self.host}:{self.ports['management']}"

    @staticmethod
    def _default_launcher() -> str:
        candidate = Path(sys.executable).with_name("torchserve")
        return str(candidate) if candidate.exists() else (shutil.which("torchserve") or "torchserve")

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "LocalServer":
        """Start TorchServe and wait until it answers ``/ping`` and has written its key file."""
        if self.process is not None:
            return self
        for d in (self.workdir, self.model_store, self.tmp_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.key_file.unlink(missing_ok=True)
        self._keys = None
        self.ports = {name: free_port(self.host) for name in
                      ("inference", "management", "metrics", "grpc_inference", "grpc_management")}
        config_path = self.workdir / "config.properties"
        config_path.write_text(self._properties())
        if self.console_log.is_file() and self.console_log.stat().st_size:  # this start's output on its own
            self.console_log.replace(self.console_log.with_name(self.console_log.name + ".1"))
        stdout = open(self.console_log, "ab")
        try:
            self.process = subprocess.Popen(self._command(config_path), cwd=self.workdir, env=self._environment(),
                                            stdout=stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        finally:
            stdout.close()
        self.pgid = self.process.pid
        self._write_state()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _properties(self) -> str:
        """The ``config.properties`` text TorchServe starts with."""
        props = {
            "inference_address": f"http://{self.host}:{self.ports['inference']}",
            "management_address": f"http://{self.host}:{self.ports['management']}",
            "metrics_address": f"http://{self.host}:{self.ports['metrics']}",
            "grpc_inference_address": self.host,
            "grpc_management_address": self.host,
            "grpc_inference_port": self.ports["grpc_inference"],
            "grpc_management_port": self.ports["grpc_management"],
            "model_store": str(self.model_store),
            "disable_system_metrics": "true",
            "default_workers_per_model": 1,
        }
        props.update(self.extra_config)
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _command(self, config_path: Path) -> list[str]:
        """The launcher's command line."""
        return [self.torchserve, "--start", "--foreground", "--ncs", "--enable-model-api",
                "--model-store", str(self.model_store), "--ts-config", str(config_path)]

    def _environment(self) -> dict[str, str]:
        """The launcher's environment: this one, with the temp dir, logs and metrics kept private."""
        env = dict(os.environ)
        env.update({"TMPDIR": str(self.tmp_dir), "TEMP": str(self.tmp_dir),
                    "LOG_LOCATION": str(self.log_dir), "METRICS_LOCATION": str(self.log_dir)})
        env.pop("TS_CONFIG_FILE", None)
        return env

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise LocalServerError(f"torchserve exited with code {self.process.returncode}; "
                                       f"see {self.console_log}: {self._log_tail()}")
            try:
                if not self.uses_tokens or self.key_file.exists():  # written before the APIs listen
                    status, _, _ = self.call("inference", "GET", "/ping", timeout=2)
                    if status == 200:
                        return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        raise LocalServerError(f"torchserve did not answer /ping within {self.start_timeout:.0f}s: {self._log_tail()}")

    def _log_tail(self, n: int = 2000) -> str:
        try:
            return self.console_log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def container_logs(self) -> str:
        """What TorchServe wrote to its console (on an endpoint: what SageMaker sends to CloudWatch Logs)."""
        try:
            return self.console_log.read_text(errors="replace")
        except OSError:
            return ""

    def _java_pid(self) -> int | None:
        try:
            return int((self.tmp_dir / ".model_server.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def _write_state(self) -> None:
        state = {"pgid": self.pgid, "ports": self.ports, "host": self.host, "launcher_pid": self.pgid}
        (self.workdir / STATE_FILE).write_text(json.dumps(state))

    @classmethod
    def attach(cls, workdir: str | os.PathLike) -> "LocalServer":
        """Re-open a server started by another process from its working directory (for ``stop``/calls)."""
        server = cls(workdir)
        state = json.loads((server.workdir / STATE_FILE).read_text())
        server.pgid, server.ports, server.host = state["pgid"], state["ports"], state["host"]
        return server

    def is_running(self) -> bool:
        """True while any process of this server's session is alive."""
        return self.pgid is not None and group_alive(self.pgid)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop TorchServe (SIGTERM to the Java frontend, which stops its workers), then make sure no
        process of this session is left (SIGTERM, then SIGKILL to the session's process group)."""
        if self.pgid is None:
            return
        java = self._java_pid()
        if java is not None and alive(java):
            try:
                os.kill(java, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._session_alive():
            time.sleep(0.1)
        if self.process is not None:
            self.process.poll()  # reap the launcher if it is our child
        try:
            stop_process_group(self.pgid)
        except ProcessGroupError as exc:
            raise LocalServerError(str(exc)) from None
        (self.workdir / STATE_FILE).unlink(missing_ok=True)
        self.process = None
        self.pgid = None
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _session_alive(self) -> bool:
        if self.process is not None and self.process.poll() is None:
            return True
        return self.pgid is not None and group_alive(self.pgid)

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ HTTP
    def keys(self) -> dict:
        """The current API keys from ``key_file.json``: ``{"management": ..., "inference": ...}``
        (read again whenever the file changes)."""
        path = self.key_file
        stamp = path.stat().st_mtime_ns
        cached = self._keys
        if cached is None or cached[0] != stamp:
            data = json.loads(path.read_text())
            cached = (stamp, {api: data[api]["key"] for api in ("management", "inference") if api in data})
            self._keys = cached
        return cached[1]

    def renew_key(self, api: str = "inference", timeout: float = 30.0) -> str:
        """Ask TorchServe for a new ``inference`` or ``management`` key (its token API,
        authorised by the ``API`` key of ``key_file.json``, which TorchServe then rewrites);
        returns the new key. Raises :class:`LocalServerError` when the key file cannot be read
        or TorchServe refuses."""
        if api not in ("inference", "management"):
            raise ValueError(f"api must be 'inference' or 'management', got {api!r}")
        try:
            api_key = json.loads(self.key_file.read_text())["API"]["key"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LocalServerError(f"cannot read the TorchServe API key from {self.workdir}: {exc}") from None
        query = urllib.parse.urlencode({"type": api})
        status, _, data = self._http("POST", f"{self.management_url}/token?{query}",
                                     headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout)
        if status != 200:
            raise LocalServerError(f"TorchServe refused a new {api} key: HTTP {status} {data[:200]!r}")
        self._keys = None  # rewritten just now: read it again whatever its timestamp says
        try:
            return self.keys()[api]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LocalServerError(f"cannot read the renewed {api} key from {self.workdir}: {exc}") from None

    def _http(self, method: str, url: str, body: bytes | None = None, headers: dict | None = None,
              timeout: float = 60.0) -> tuple[int, dict, bytes]:
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers or {}), err.read()

    def call(self, api: str, method: str, path: str, body: bytes | None = None,
             content_type: str | None = None, timeout: float = 120.0,
             headers: dict | None = None) -> tuple[int, dict, bytes]:
        """One authenticated request to the ``inference`` or ``management`` API.

        Returns ``(status, headers, body)``; HTTP errors are returned, not raised. When TorchServe
        rejects the key (keys expire after an hour), a new one is fetched once and the request
        sent again (concurrent callers renew it once, not once each).
        """
        base = self.inference_url if api == "inference" else self.management_url
        sent = dict(headers or {})
        if content_type:
            sent["Content-Type"] = content_type
        if not self.uses_tokens:
            return self._http(method, base + path, body, sent, timeout)
        for attempt in (1, 2):
            key = self.keys()[api]
            sent["Authorization"] = f"Bearer {key}"
            status, got, data = self._http(method, base + path, body, sent, timeout)
            if attempt == 2 or status not in (400, 401) or b"InvalidKeyException" not in data[:300]:
                return status, got, data
            with self._renew_lock:
                if self.keys()[api] == key:
                    self.renew_key(api)
        return status, got, data

    def predict(self, model_name: str, payload: dict | bytes, timeout: float = 120.0) -> tuple[int, bytes]:
        """POST a JSON request to ``/predictions/<model>``; returns ``(status, body)``."""
        body = payload if isinstance(payload, (bytes, bytearray)) else json.dumps(payload).encode()
        status, _, data = self.call("inference", "POST", f"/predictions/{urllib.parse.quote(model_name)}",
                                    bytes(body), "application/json", timeout)
        return status, data

    def register(self, archive: str | os.PathLike, model_name: str, initial_workers: int = 1,
                 timeout: float = 600.0) -> dict:
        """Register a model synchronously, as SageMaker MME loads a model on first use.

        ``archive``: a ``.tar.gz`` holding the no-archive model dir at its root (the project's
        artifact), a model directory, or a ``.mar``. A ``.tar.gz`` is unpacked into the model store
        and the directory is registered, which is what SageMaker MME does with the S3 object
        (TorchServe 0.12 registers a ``.tar.gz`` URL itself only when the files sit under one
        top-level folder).
        """
        archive = Path(archive).resolve()
        name = archive.name
        if archive.is_dir() or name.endswith((".tar.gz", ".tgz")):
            stem = name[:-7] if name.endswith(".tar.gz") else (name[:-4] if name.endswith(".tgz") else name)
            target = self.model_store / stem
            if target != archive:
                shutil.rmtree(target, ignore_errors=True)
                if archive.is_dir():
                    shutil.copytree(archive, target)
                else:
                    target.mkdir(parents=True)
                    with tarfile.open(archive, "r:gz") as tar:
                        tar.extractall(target, filter="data")
        else:
            target = self.model_store / name
            if target != archive:
                target.unlink(missing_ok=True)
                try:
                    os.link(archive, target)
                except OSError:
                    shutil.copy2(archive, target)
        query = urllib.parse.urlencode({"url": target.name, "model_name": model_name,
                                        "initial_workers": initial_workers, "synchronous": "true"})
        status, _, body = self.call("management", "POST", f"/models?{query}", timeout=timeout)
        if status != 200:
            raise LocalServerError(f"register {model_name} failed: HTTP {status} {body[:500]!r}")
        return json.loads(body or b"{}")

    def unregister(self, model_name: str, timeout: float = 120.0) -> None:
        """Unregister a model (its workers stop)."""
        status, _, body = self.call("management", "DELETE", f"/models/{urllib.parse.quote(model_name)}",
                                    timeout=timeout)
        if status != 200:
            raise LocalServerError(f"unregister {model_name} failed: HTTP {status} {body[:500]!r}")

    def models(self) -> list[str]:
        """Names of the registered models."""
        status, _, body = self.call("management", "GET", "/models")
        if status != 200:
            raise LocalServerError(f"list models failed: HTTP {status} {body[:500]!r}")
        return [m["modelName"] for m in json.loads(body).get("models", [])]

    def describe(self, model_name: str) -> list:
        """The management API's description of a model (workers, status, ...)."""
        status, _, body = self.call("management", "GET", f"/models/{urllib.parse.quote(model_name)}")
        if status != 200:
            raise LocalServerError(f"describe {model_name} failed: HTTP {status} {body[:500]!r}")
        return json.loads(body)
