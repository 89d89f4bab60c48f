"""Weight files over HTTP(S): GET with redirects (the token kept to the same host, never
downgraded to http), transient failures marked retryable, resumption with ``Range``/``If-Range``.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Callable
from urllib.parse import urlparse, urlunparse

from . import PACKAGER_FORMAT
from .download_retry import DownloadRetryPolicy, RetryableError
from .errors import SourceError
from .time_budget import Budget
from .weight_stream import Opener

USER_AGENT = f"{PACKAGER_FORMAT} (python urllib)"


def display_url(url: str) -> str:
    """The URL without query and fragment (signed CDN URLs carry credentials there)."""
    p = urlparse(url)
    return urlunparse((p.scheme, p.netloc, p.path, "", "", ""))


class _RedirectKeepingSameHostAuth(urllib.request.HTTPRedirectHandler):
    """Follow redirects; keep ``Authorization`` only to the same host, never downgrade to http."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102, ANN001
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is None:
            return None
        old, nxt = urlparse(req.full_url), urlparse(new.full_url)
        if old.scheme == "https" and nxt.scheme != "https":
            raise SourceError(f"refusing a redirect from https to {nxt.scheme}: {display_url(new.full_url)}")
        auth = req.unredirected_hdrs.get("Authorization")
        if auth and nxt.netloc == old.netloc:
            new.add_unredirected_header("Authorization", auth)
        return new


_HTTP = urllib.request.build_opener(_RedirectKeepingSameHostAuth())
_RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


def http_open(url: str, *, budget: Budget, token: str | None = None, offset: int = 0,
              if_range: str | None = None, accept: str | None = None):
    """GET ``url`` (redirects followed); transient failures raise :class:`RetryableError`."""
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    if accept:
        req.add_header("Accept", accept)
    if token:
        req.add_unredirected_header("Authorization", f"Bearer {token}")
    if offset:
        req.add_header("Range", f"bytes={offset}-")
        if if_range:
            req.add_header("If-Range", if_range)
    try:
        return _HTTP.open(req, timeout=budget.io_timeout())
    except urllib.error.HTTPError as err:
        err.close()
        where = display_url(url)
        if err.code in _RETRYABLE_STATUS:
            raise RetryableError(f"HTTP {err.code} {err.reason} from {where}") from None
        hint = ""
        if err.code in (401, 403):
            hint = " (gated or private? give the spec a token_secret_arn)" if "/resolve/" in url or "/api/" in url else ""
        raise SourceError(f"HTTP {err.code} {err.reason} for {where}{hint}") from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, SourceError):
            raise err.reason from None
        raise RetryableError(f"cannot reach {display_url(url)}: {err.reason}") from None
    except (OSError, http.client.HTTPException) as err:
        raise RetryableError(f"{type(err).__name__} from {display_url(url)}: {err}") from None


def http_opener(url: str, label: str, token_provider: Callable[[], str | None] | None = None) -> Opener:
    state: dict[str, str] = {}

    def opener(offset: int, budget: Budget):
        token = token_provider() if token_provider else None
        resp = http_open(url, budget=budget, token=token, offset=offset, if_range=state.get("validator"))
        try:
            if offset == 0:
                if resp.status != 200:
                    raise SourceError(f"{label}: unexpected HTTP {resp.status}")
                length = resp.headers.get("Content-Length")
                if length is None:
                    raise SourceError(f"{label}: the server sent no Content-Length (needed to stream into the tar)")
                etag = resp.headers.get("ETag")
                if etag and not etag.startswith("W/"):
                    state["validator"] = etag
                return resp, int(length)
            if resp.status != 206:
                raise SourceError(f"{label}: connection dropped at byte {offset} and the server cannot resume "
                                  f"(HTTP {resp.status} to a Range request)")
            content_range = resp.headers.get("Content-Range", "")
            try:
                unit_range, total = content_range.split(" ", 1)[1].split("/")
                start = int(unit_range.split("-")[0])
                total_size = int(total)
            except (IndexError, ValueError):
                raise SourceError(f"{label}: bad Content-Range {content_range!r} when resuming") from None
            if start != offset:
                raise SourceError(f"{label}: asked to resume at {offset}, the server resumed at {start}")
            return resp, total_size
        except Exception:
            resp.close()
            raise

    return opener


def http_json(url: str, *, budget: Budget, retry: DownloadRetryPolicy, token: str | None, label: str) -> dict:
    failures = 0
    while True:
        budget.check(f"listing {label}")
        try:
            resp = http_open(url, budget=budget, token=token, accept="application/json")
            with resp:
                return json.loads(resp.read(64 << 20))
        except RetryableError as err:
            failures += 1
            if failures >= retry.attempts:
                raise SourceError(f"{label}: {err} (gave up after {failures} attempts)") from None
            budget.sleep(retry.delay(failures), f"listing {label}")
        except json.JSONDecodeError:
            raise SourceError(f"{label}: the listing is not JSON") from None

