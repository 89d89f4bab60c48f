"""Deterministic streaming ``tar.gz`` writer and the TorchServe ``MAR-INF/MANIFEST.json``.

The same members always give the same bytes:

* members are written in a fixed order (:func:`member_order`: path components compared one by
  one, so a folder comes before its contents), with explicit folder entries;
* every header has the same mtime (:data:`FIXED_MTIME`), uid/gid 0, empty user/group names,
  mode 0644 for files and 0755 for folders; ustar headers written by this module (not by
  ``tarfile``, whose output may change between Python versions), with a POSIX pax record block
  only where a name or a size does not fit the ustar fields (e.g. files over 8 GiB);
* the gzip header has no file name, mtime 0, OS 255 (unknown); the end of the tar is padded to
  a 10240-byte record like tar(1) and Python's tarfile do.

Nothing is buffered beyond one chunk: members are streamed into the gzip compressor, whose
output goes straight to a sink (an S3 multipart upload or a file).

Gzip level: 0 (stored deflate blocks) by default; see docs/performance.md for the measurement:
weights (the GBs) shrink by about 7.5% at best at levels 1-9 while compression runs at 20-40 MB/s
on one core, and inflating on every model load drops from ~2 GB/s (stored) to ~150 MB/s.
"""

from __future__ import annotations

import json
import struct
import tarfile
import zlib
from typing import BinaryIO, Protocol

FIXED_MTIME = 946684800
"""2000-01-01T00:00:00Z: the mtime of every member."""
CREATED_ON = "01/01/2000 00:00:00"
"""``createdOn`` of the manifest, in torch-model-archiver's ``%d/%m/%Y %H:%M:%S`` format."""
ARCHIVER_VERSION = "0.12.0"
"""The torch-model-archiver version whose ``MANIFEST.json`` fields this archive reproduces."""
DEFAULT_GZIP_LEVEL = 0
RECORD_SIZE = tarfile.RECORDSIZE
BLOCK = tarfile.BLOCKSIZE
FILE_MODE = 0o644
DIR_MODE = 0o755


class Sink(Protocol):
    """Where bytes go (an upload, a file, a hash)."""

    def write(self, data: bytes) -> object: ...  # noqa: D102


def member_order(path: str) -> tuple[str, ...]:
    """Sort key of archive members: by path components (``a`` < ``a/b`` < ``a-b``)."""
    return tuple(path.split("/"))


def parent_dirs(paths) -> list[str]:  # noqa: ANN001
    """Every folder that holds one of ``paths`` (``a/b/c`` -> ``a``, ``a/b``)."""
    dirs: set[str] = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    return sorted(dirs, key=member_order)


def manifest_json(model_name: str, *, model_version: str, handler: str = "handler.py",
                  config_file: str | None = "model-config.yaml") -> bytes:
    """``MAR-INF/MANIFEST.json`` as torch-model-archiver 0.12 writes it (deterministic values).

    Same fields and order as ``model_archiver.manifest_components``: ``createdOn``, ``runtime``,
    ``model`` (``modelName``, ``handler``, ``modelVersion``, ``configFile``), ``archiverVersion``;
    ``json.dumps(indent=2)`` without a trailing newline, like the tool.
    """
    model: dict[str, str] = {"modelName": model_name, "handler": handler}
    if model_version:
        model["modelVersion"] = model_version
    if config_file:
        model["configFile"] = config_file
    manifest = {"createdOn": CREATED_ON, "runtime": "python", "model": model, "archiverVersion": ARCHIVER_VERSION}
    return json.dumps(manifest, indent=2).encode("utf-8")


USTAR_MAX_SIZE = 8**11 - 1
PAX_HEADER_NAME = "././@PaxHeader"


def _octal(value: int, width: int) -> bytes:
    """A ustar numeric field: zero-padded octal digits and a NUL."""
    return b"%0*o" % (width - 1, value) + b"\0"


def _text(value: bytes, width: int) -> bytes:
    return value[:width].ljust(width, b"\0")


def _split_name(name: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) fitting ustar's 155 + 100 bytes, or None."""
    if len(name) <= 100:
        return b"", name
    for i in range(len(name) - 1, 0, -1):
        if name[i : i + 1] == b"/" and i <= 155 and len(name) - i - 1 <= 100 and i < len(name) - 1:
            return name[:i], name[i + 1 :]
    return None


def _ustar_block(name: bytes, prefix: bytes, *, size: int, typeflag: bytes, mode: int, mtime: int) -> bytes:
    fields = [
        _text(name, 100), _octal(mode, 8), _octal(0, 8), _octal(0, 8), _octal(size, 12), _octal(mtime, 12),
        b" " * 8, typeflag, _text(b"", 100), b"ustar\x0000", _text(b"", 32), _text(b"", 32),
        _text(b"", 8), _text(b"", 8), _text(prefix, 155),
    ]
    block = b"".join(fields).ljust(BLOCK, b"\0")
    checksum = b"%06o\0 " % sum(block)
    return block[:148] + checksum + block[156:]


def _pax_records(records: dict[str, str]) -> bytes:
    out = b""
    for keyword, value in records.items():
        body = f" {keyword}={value}\n".encode("utf-8")
        length = len(body)
        total = length + len(str(length))
        while total != length + len(str(total)):
            total = length + len(str(total))
        out += str(total).encode("ascii") + body
    return out


def tar_header(path: str, *, size: int, is_dir: bool) -> bytes:
    """Header block(s) of one member: ustar, preceded by a pax record block when needed.

    Written by hand (not ``tarfile.TarInfo.tobuf``) so the bytes cannot change with the Python
    version: the Lambda runtime and the CLI must produce identical archives.
    """
    raw = path.encode("utf-8")
    records: dict[str, str] = {}
    split = _split_name(raw) if raw.isascii() else None
    if split is None:
        records["path"] = path
        split = (b"", _text(raw, 100)[:100])
    if size > USTAR_MAX_SIZE:
        records["size"] = str(size)
    mode = DIR_MODE if is_dir else FILE_MODE
    typeflag = b"5" if is_dir else b"0"
    out = b""
    if records:
        data = _pax_records(records)
        out += _ustar_block(PAX_HEADER_NAME.encode(), b"", size=len(data), typeflag=b"x", mode=FILE_MODE,
                            mtime=FIXED_MTIME)
        out += data + b"\0" * ((-len(data)) % BLOCK)
    prefix, name = split
    out += _ustar_block(name, prefix, size=0 if size > USTAR_MAX_SIZE else size, typeflag=typeflag, mode=mode,
                        mtime=FIXED_MTIME)
    return out



class GzipWriter:
    """A gzip member written incrementally: fixed header, raw deflate body, CRC32 + size trailer."""

    def __init__(self, sink: Sink, level: int = DEFAULT_GZIP_LEVEL) -> None:
        if not 0 <= level <= 9:
            raise ValueError(f"gzip level must be 0-9, got {level}")
        self._sink = sink
        self._crc = 0
        self._size = 0
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 9)
        xfl = 2 if level == 9 else 4 if level == 1 else 0
        # magic, deflate, no flags (no FNAME), mtime 0, extra flags, OS 255 (unknown)
        sink.write(b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + bytes((xfl, 255)))
        self.closed = False

    def write(self, data: bytes) -> None:
        """Compress and forward ``data``."""
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        out = self._compressor.compress(data)
        if out:
            self._sink.write(out)

    def close(self) -> None:
        """Finish the deflate stream and write the trailer."""
        if self.closed:
            return
        self._sink.write(self._compressor.flush(zlib.Z_FINISH) + struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
        self.closed = True


class TarWriter:
    """A streaming tar writer with fixed metadata; members must be added in :func:`member_order`."""

    def __init__(self, out: Sink) -> None:
        self._out = out
        self._written = 0
        self._open: tuple[str, int, int] | None = None  # path, size, written
        self._last: tuple[str, ...] | None = None
        self.closed = False

    def _emit(self, data: bytes) -> None:
        self._out.write(data)
        self._written += len(data)

    def _header(self, path: str, *, size: int, is_dir: bool) -> None:
        key = member_order(path)
        if self._last is not None and key <= self._last:
            raise ValueError(f"tar members out of order: {path!r} after {'/'.join(self._last)!r}")
        self._last = key
        self._emit(tar_header(path + "/" if is_dir else path, size=0 if is_dir else size, is_dir=is_dir))

    def add_dir(self, path: str) -> None:
        """A folder entry."""
        self._require_idle()
        self._header(path, size=0, is_dir=True)

    def add_bytes(self, path: str, data: bytes) -> None:
        """A small file given whole."""
        self.begin_file(path, len(data))
        self.write(data)
        self.end_file()

    def begin_file(self, path: str, size: int) -> None:
        """Start a file of exactly ``size`` bytes; then :meth:`write` its content, then :meth:`end_file`."""
        self._require_idle()
        self._header(path, size=size, is_dir=False)
        self._open = (path, size, 0)

    def write(self, data: bytes) -> None:
        """Content of the current file."""
        if self._open is None:
            raise ValueError("no open tar member")
        path, size, written = self._open
        if written + len(data) > size:
            raise ValueError(f"{path}: more than the announced {size} bytes")
        self._emit(data)
        self._open = (path, size, written + len(data))

    def end_file(self) -> None:
        """Close the current file (pads it to a 512-byte block)."""
        if self._open is None:
            raise ValueError("no open tar member")
        path, size, written = self._open
        if written != size:
            raise ValueError(f"{path}: {written} bytes written, {size} announced")
        pad = (-size) % BLOCK
        if pad:
            self._emit(b"\0" * pad)
        self._open = None

    def close(self) -> None:
        """End-of-archive blocks, padded to a full record."""
        if self.closed:
            return
        self._require_idle()
        end = 2 * BLOCK
        end += (-(self._written + end)) % RECORD_SIZE
        self._emit(b"\0" * end)
        self.closed = True

    def _require_idle(self) -> None:
        if self._open is not None:
            raise ValueError(f"tar member {self._open[0]!r} is still open")


class DigestSink:
    """Forwards bytes to ``target`` while counting them and computing their sha256."""

    def __init__(self, target: Sink | BinaryIO) -> None:
        import hashlib  # noqa: PLC0415

        self._target = target
        self._sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:  # noqa: D102
        self._sha.update(data)
        self.size += len(data)
        self._target.write(data)

    def hexdigest(self) -> str:
        """sha256 of everything written so far."""
        return self._sha.hexdigest()
