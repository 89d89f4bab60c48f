"""Weights spec: what goes under ``weights/`` in a model archive, validated before any download.

A spec is a small mapping (YAML next to each model source, JSON in the custom resource):

``kind: huggingface``
    ``repo_id`` (``owner/name``), ``revision`` (a pinned 40-hex commit: branch names move),
    ``allow_patterns`` (fnmatch patterns over repo paths; each must match at least one file),
    optional ``ignore_patterns``, ``token_secret_arn`` (Secrets Manager secret holding a Hub
    token, for gated repos), ``base_url`` (default ``https://huggingface.co``; a mirror or a
    test server), and optional ``files`` (an explicit list of ``{path, size?, sha256?}`` that
    replaces the Hub API listing). Files keep their repo paths under ``weights/``.
    Downloads use the Hub's resolve URLs ``{base}/{repo}/resolve/{revision}/{path}``; the
    listing comes from ``GET {base}/api/models/{repo}/revision/{revision}?blobs=true`` whose
    ``siblings`` carry sizes, LFS sha256 and git blob ids, all verified while streaming.
``kind: url``
    ``files: [{url, path, sha256?, md5?, size?}]`` (http/https). Pin ``sha256`` where a
    trustworthy value exists; ``md5`` is accepted for artifacts whose publisher only gives md5.
``kind: s3``
    ``uri``: ``s3://bucket/key`` (one object, stored as ``path`` or its base name) or
    ``s3://bucket/prefix/`` (every object under it, relative paths kept); optional ``sha256``
    (object only), ``path``, ``kms_key_arn`` (the staged bucket's CMK, for the IAM grant).
``kind: local``
    ``path``: a local directory whose files become ``weights/`` (CLI only; not in Lambda).
``kind: none``
    The model source folder carries everything.

Standard library only (the YAML loader imports PyYAML lazily: it is used at synth time and by
the CLI, never in the Lambda, which receives the spec as JSON).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

from .errors import SpecError

KINDS = ("huggingface", "url", "s3", "local", "none")
DEFAULT_HF_BASE_URL = "https://huggingface.co"

_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$")
_KMS_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MAX_PATH_CHARS = 255


def safe_relative_path(value: Any, where: str) -> str:
    """Validate a relative POSIX path (no ``..``, no absolute, no empty or dot parts)."""
    if not isinstance(value, str) or not value:
        raise SpecError(f"{where}: must be a non-empty relative path")
    if len(value) > MAX_PATH_CHARS:
        raise SpecError(f"{where}: longer than {MAX_PATH_CHARS} characters")
    if value.startswith("/") or "\\" in value or "\x00" in value:
        raise SpecError(f"{where}: {value!r} must be a relative path with '/' separators")
    parts = value.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise SpecError(f"{where}: {value!r} has an empty, '.' or '..' component")
    return value


def _str(data: Mapping, key: str, where: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise SpecError(f"{where}.{key}: required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where}.{key}: must be a non-empty string")
    return value.strip()


def _hex(data: Mapping, key: str, where: str, pattern: re.Pattern, what: str) -> str | None:
    value = _str(data, key, where, required=False)
    if value is None:
        return None
    value = value.lower()
    if not pattern.match(value):
        raise SpecError(f"{where}.{key}: must be {what}, got {value!r}")
    return value


def _size(data: Mapping, key: str, where: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise SpecError(f"{where}.{key}: must be a non-negative integer")
    try:
        number = int(value)
    except ValueError:
        raise SpecError(f"{where}.{key}: must be a non-negative integer, got {value!r}") from None
    if number < 0:
        raise SpecError(f"{where}.{key}: must be a non-negative integer, got {number}")
    return number


def _patterns(data: Mapping, key: str, where: str, *, required: bool) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        if required:
            raise SpecError(f"{where}.{key}: required (a list of patterns; weights repos hold many variants)")
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(p, str) and p.strip() for p in value):
        raise SpecError(f"{where}.{key}: must be a non-empty list of patterns")
    return tuple(p.strip() for p in value)


def _check_keys(data: Mapping, allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")


def _http_url(value: str, where: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise SpecError(f"{where}: {value!r} must be an http(s) URL")
    return value


@dataclass(frozen=True)
class FileEntry:
    """One expected file: its path under ``weights/`` and what is known about it in advance."""

    path: str
    url: str | None = None
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None

    def identity(self) -> dict:
        """The fields that define the content (used in the input digest)."""
        return {k: v for k, v in (("path", self.path), ("url", self.url), ("size", self.size),
                                   ("sha256", self.sha256), ("md5", self.md5)) if v is not None}


@dataclass(frozen=True)
class WeightsSpec:
    """A validated weights spec. Build it with :func:`parse_spec`."""

    kind: str
    repo_id: str | None = None
    revision: str | None = None
    allow_patterns: tuple[str, ...] = ()
    ignore_patterns: tuple[str, ...] = ()
    token_secret_arn: str | None = None
    base_url: str = DEFAULT_HF_BASE_URL
    files: tuple[FileEntry, ...] = ()
    s3_uri: str | None = None
    path: str | None = None
    sha256: str | None = None
    kms_key_arn: str | None = None
    local_path: str | None = None

    # ---- views --------------------------------------------------------------------------
    def to_json_dict(self) -> dict:
        """The normalized spec as plain JSON (what the custom resource receives)."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind == "huggingface":
            out.update(repo_id=self.repo_id, revision=self.revision, allow_patterns=list(self.allow_patterns))
            if self.ignore_patterns:
                out["ignore_patterns"] = list(self.ignore_patterns)
            if self.token_secret_arn:
                out["token_secret_arn"] = self.token_secret_arn
            if self.base_url != DEFAULT_HF_BASE_URL:
                out["base_url"] = self.base_url
            if self.files:
                out["files"] = [f.identity() for f in self.files]
        elif self.kind == "url":
            out["files"] = [f.identity() for f in self.files]
        elif self.kind == "s3":
            out["uri"] = self.s3_uri
            for key in ("path", "sha256", "kms_key_arn"):
                if getattr(self, key):
                    out[key] = getattr(self, key)
        elif self.kind == "local":
            out["path"] = self.local_path
        return out

    def to_json(self) -> str:
        """Canonical JSON text of :meth:`to_json_dict` (sorted keys, no spaces)."""
        return json.dumps(self.to_json_dict(), sort_keys=True, separators=(",", ":"))

    def identity(self) -> dict:
        """What defines the weights' bytes, for the input digest.

        Transport details are left out (``base_url``: a mirror serves the same pinned commit,
        verified by digest; ``token_secret_arn``; ``kms_key_arn``). For ``s3`` and ``local`` the
        resolved listing is added by the planner (objects can be replaced under the same name).
        """
        data = self.to_json_dict()
        for transport_only in ("base_url", "token_secret_arn", "kms_key_arn"):
            data.pop(transport_only, None)
        if self.kind == "local":
            data.pop("path", None)  # the same files from another folder are the same weights
        return data

    @property
    def s3_bucket(self) -> str | None:
        """Bucket of an ``s3`` spec."""
        return urlparse(self.s3_uri).netloc if self.s3_uri else None

    @property
    def s3_key(self) -> str | None:
        """Key (object) or prefix (ends with ``/``) of an ``s3`` spec."""
        return urlparse(self.s3_uri).path.lstrip("/") if self.s3_uri else None

    @property
    def s3_is_prefix(self) -> bool:
        """True when the ``s3`` spec names a prefix (``s3://bucket/prefix/``)."""
        return bool(self.s3_uri) and (self.s3_key == "" or self.s3_key.endswith("/"))


def _token_safe(base_url: str) -> bool:
    """True where a bearer token may be sent: https, or plain http to this machine (tests, a local mirror)."""
    parts = urlparse(base_url)
    return parts.scheme == "https" or (parts.hostname or "") in ("127.0.0.1", "localhost", "::1")


def parse_spec(data: Any, where: str = "weights") -> WeightsSpec:
    """Validate a spec mapping (from YAML or JSON) and return a :class:`WeightsSpec`.

    Raises :class:`SpecError` with the offending field in the message.
    """
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as err:
            raise SpecError(f"{where}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if data is None:
        data = {"kind": "none"}
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: must be a mapping with a 'kind' field")
    kind = data.get("kind")
    if kind not in KINDS:
        raise SpecError(f"{where}.kind: must be one of {', '.join(KINDS)}, got {kind!r}")

    if kind == "none":
        _check_keys(data, {"kind"}, where)
        return WeightsSpec(kind="none")

    if kind == "local":
        _check_keys(data, {"kind", "path"}, where)
        return WeightsSpec(kind="local", local_path=_str(data, "path", where))

    if kind == "huggingface":
        _check_keys(data, {"kind", "repo_id", "revision", "allow_patterns", "ignore_patterns",
                           "token_secret_arn", "base_url", "files"}, where)
        repo_id = _str(data, "repo_id", where)
        if not _REPO_ID.match(repo_id):
            raise SpecError(f"{where}.repo_id: must look like 'owner/name', got {repo_id!r}")
        revision = _str(data, "revision", where).lower()
        if not _HEX40.match(revision):
            raise SpecError(f"{where}.revision: must be a pinned 40-hex commit id (branches and tags move), "
                            f"got {revision!r}")
        files = _file_list(data.get("files"), f"{where}.files", need_url=False) if "files" in data else ()
        allow = _patterns(data, "allow_patterns", where, required=not files)
        ignore = _patterns(data, "ignore_patterns", where, required=False)
        secret = _str(data, "token_secret_arn", where, required=False)
        if secret and not _SECRET_ARN.match(secret):
            raise SpecError(f"{where}.token_secret_arn: must be a Secrets Manager secret ARN, got {secret!r}")
        base_url = _http_url((_str(data, "base_url", where, required=False) or DEFAULT_HF_BASE_URL).rstrip("/"),
                             f"{where}.base_url")
        if secret and not _token_safe(base_url):
            raise SpecError(f"{where}.base_url: a Hub token (token_secret_arn) is only sent over https, "
                            f"got {base_url!r}")
        return WeightsSpec(kind="huggingface", repo_id=repo_id, revision=revision, allow_patterns=allow,
                           ignore_patterns=ignore, token_secret_arn=secret, base_url=base_url, files=files)

    if kind == "url":
        _check_keys(data, {"kind", "files"}, where)
        files = _file_list(data.get("files"), f"{where}.files", need_url=True)
        return WeightsSpec(kind="url", files=files)

    # kind == "s3"
    _check_keys(data, {"kind", "uri", "path", "sha256", "kms_key_arn"}, where)
    uri = _str(data, "uri", where)
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not _BUCKET.match(parsed.netloc or ""):
        raise SpecError(f"{where}.uri: must be s3://bucket/key or s3://bucket/prefix/, got {uri!r}")
    key = parsed.path.lstrip("/")
    is_prefix = key == "" or key.endswith("/")
    if key and not is_prefix:
        safe_relative_path(key, f"{where}.uri key")
    path = _str(data, "path", where, required=False)
    sha = _hex(data, "sha256", where, _HEX64, "64 hex characters")
    if is_prefix and (path or sha):
        raise SpecError(f"{where}: 'path' and 'sha256' apply to one object, not to a prefix ({uri})")
    if path:
        safe_relative_path(path, f"{where}.path")
    kms = _str(data, "kms_key_arn", where, required=False)
    if kms and not _KMS_ARN.match(kms):
        raise SpecError(f"{where}.kms_key_arn: must be a KMS key ARN, got {kms!r}")
    return WeightsSpec(kind="s3", s3_uri=uri, path=path, sha256=sha, kms_key_arn=kms)


def _file_list(value: Any, where: str, *, need_url: bool) -> tuple[FileEntry, ...]:
    if not isinstance(value, list) or not value:
        raise SpecError(f"{where}: must be a non-empty list")
    entries: list[FileEntry] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            raise SpecError(f"{at}: must be a mapping")
        _check_keys(item, {"url", "path", "sha256", "md5", "size"} if need_url else {"path", "sha256", "size"}, at)
        url = _http_url(_str(item, "url", at), f"{at}.url") if need_url else None
        path = item.get("path")
        if path is None and url:
            path = urlparse(url).path.rsplit("/", 1)[-1]
        path = safe_relative_path(path, f"{at}.path")
        if path in seen:
            raise SpecError(f"{at}.path: {path!r} appears twice")
        seen.add(path)
        entries.append(FileEntry(
            path=path,
            url=url,
            size=_size(item, "size", at),
            sha256=_hex(item, "sha256", at, _HEX64, "64 hex characters"),
            md5=_hex(item, "md5", at, _HEX32, "32 hex characters") if need_url else None,
        ))
    return tuple(entries)


def load_spec_file(path: str | Path) -> WeightsSpec:
    """Read a weights spec from a YAML (``.yaml``/``.yml``) or JSON file and validate it.

    Used at synth time by the ``ModelArtifact`` construct and by ``mme package``; imports
    PyYAML only for YAML files.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SpecError(f"{path}: cannot read the weights spec ({err.strerror or err})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml  # noqa: PLC0415  (optional: synth time / CLI only)
        except ImportError:  # pragma: no cover - PyYAML is a dependency of the CLI and the constructs
            raise SpecError(f"{path}: PyYAML is needed to read YAML weights specs") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark is not None else ""
            raise SpecError(f"{path}: invalid YAML{at}: {getattr(err, 'problem', None) or err}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise SpecError(f"{path}: invalid JSON ({err.msg} at line {err.lineno})") from None
    return parse_spec(data, where=path.name)
