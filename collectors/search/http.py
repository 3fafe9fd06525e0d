"""The one polite, defensive HTTP layer every search provider goes through.

Why one layer: image-search APIs and the hosts their results point at are other
people's servers (be polite: a descriptive User-Agent, a per-host rate limit, backoff on
5xx, `Retry-After` on 429) and the URLs in their results are untrusted input (be
defensive: only http/https, no redirect or host that resolves into loopback or private
networks, a size cap enforced while streaming, a content-type check). Redirects are
followed by hand so every hop is checked, and credentials are only sent to the host
they were given for.

The configured API endpoint's own host is trusted even when it is private: the user
chose it (a mirror, or a test server on 127.0.0.1). Every other host, and every
redirect target that is not that host, must resolve to public addresses only.

Secrets (API keys, tokens) are registered with the session and replaced by `***` in
every error message it raises, since URLs with keys end up in exception texts.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from urllib.parse import urljoin, urlsplit

import requests

from daad.core.errors import DaadError

DEFAULT_MAX_BYTES = 25 * 1024 * 1024  # a 50 MP JPEG is ~20 MB; anything larger is not a photo
REDIRECT_CODES = (301, 302, 303, 307, 308)
NET_CHUNK = 1 << 16


class FetchError(DaadError):
    """A request failed: `transient` ones (5xx, 429, connection) may work on a later run.

    `status` is the HTTP status of a final 4xx answer (None for other failures).
    """

    def __init__(self, url: str, reason: str, transient: bool = False, status: int | None = None):
        self.url, self.reason, self.transient, self.status = url, reason, transient, status
        super().__init__(f"{url}: {reason}")


class NotAnImageError(FetchError):
    """The server answered, but with something else than the image (an HTML page, a text)."""


@dataclass
class HttpConfig:
    """How politely and defensively to fetch. Tests shorten the waits; users rarely change them."""

    user_agent: str
    timeout: float = 30.0
    retries: int = 4  # extra tries after the first, for 5xx / 429 / connection errors
    backoff: float = 1.0  # seconds; the n-th retry waits backoff * 2**n
    max_retry_after: float = 120.0  # a 429 asking for longer than this gives up (for this run)
    rate: float = 1.0  # requests per second per host; 0 = unlimited
    max_bytes: int = DEFAULT_MAX_BYTES
    max_redirects: int = 5
    trusted_hosts: frozenset[str] = field(default_factory=frozenset)  # may resolve to private addresses


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), None if absent/unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class PoliteSession:
    """A `requests.Session` wrapped with the checks above. Not shared between threads."""

    def __init__(self, config: HttpConfig, secrets: Iterable[str] = (), sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self._secrets = [s for s in secrets if s]
        self._sleep = sleep
        self._next_slot: dict[str, float] = {}
        self._lock = threading.Lock()
        self.session = requests.Session()
        self.session.headers["User-Agent"] = config.user_agent
        self.session.trust_env = False  # no proxies or .netrc credentials picked up behind the user's back
        self.requests_made = 0  # every HTTP request sent (tests and reports count them)

    # -- helpers ----------------------------------------------------------------------
    def redact(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text

    def _fail(self, url: str, reason: str, transient: bool = False, status: int | None = None) -> FetchError:
        return FetchError(self.redact(url), self.redact(reason), transient, status)

    def check_url(self, url: str) -> None:
        """Refuse non-http(s) URLs and hosts (other than trusted ones) that resolve to non-public addresses."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise self._fail(url, f"refusing {parts.scheme or 'scheme-less'} URL (only http and https)")
        host = parts.hostname
        if not host:
            raise self._fail(url, "URL has no host")
        if host in self.config.trusted_hosts:
            return
        try:
            infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise self._fail(url, f"cannot resolve host {host} ({exc.strerror})", transient=True) from None
        for info in infos:
            ip = ipaddress.ip_address(info[4][0].split("%")[0])
            if not ip.is_global:
                raise self._fail(url, f"refusing host {host}: it resolves to non-public address {ip}")

    def _wait_for_slot(self, host: str) -> None:
        """Per-host rate limit: at most `rate` requests per second to one host."""
        if self.config.rate <= 0:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot.get(host, now))
            self._next_slot[host] = slot + 1.0 / self.config.rate
        if slot > now:
            self._sleep(slot - now)

    def _follow(self, url: str, params: dict | None, headers: dict | None) -> requests.Response:
        """One GET, following redirects by hand so that each hop is checked."""
        first_host = urlsplit(url).hostname
        for _ in range(self.config.max_redirects + 1):
            self.check_url(url)
            host = urlsplit(url).hostname or ""
            self._wait_for_slot(host)
            self.requests_made += 1
            resp = self.session.get(
                url,
                params=params,
                headers=headers if host == first_host else None,  # never leak credentials to another host
                allow_redirects=False,
                stream=True,
                timeout=self.config.timeout,
            )
            if resp.status_code in REDIRECT_CODES and resp.headers.get("Location"):
                url = urljoin(resp.url, resp.headers["Location"])
                resp.close()
                params = None  # they are part of the Location already
                continue
            return resp
        raise self._fail(url, f"more than {self.config.max_redirects} redirects")

    def fetch(self, url: str, read: Callable[[requests.Response], Any], params: dict | None = None, headers: dict | None = None) -> Any:
        """GET `url` and return `read(response)`, retrying 5xx, 429 and connection errors.

        `read` runs inside the retry loop, so a body cut off mid-way is fetched again.
        4xx answers (other than 429) fail at once: asking again will not help.
        """
        cfg = self.config
        for attempt in range(cfg.retries + 1):
            last = attempt == cfg.retries
            try:
                resp = self._follow(url, params, headers)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if last:
                    raise self._fail(url, f"connection failed {attempt + 1} times ({type(exc).__name__})", transient=True) from None
                self._sleep(cfg.backoff * 2**attempt)
                continue
            with resp:
                code = resp.status_code
                if code == 429 or code >= 500:
                    asked = _retry_after(resp.headers.get("Retry-After")) if code in (429, 503) else None
                    if asked is not None and asked > cfg.max_retry_after:
                        raise self._fail(url, f"HTTP {code}: server asks to wait {asked:.0f} s (more than {cfg.max_retry_after:.0f} s); try later", transient=True)
                    if last:
                        raise self._fail(url, f"HTTP {code} {resp.reason} after {attempt + 1} tries", transient=True)
                    self._sleep(asked if asked is not None else cfg.backoff * 2**attempt)
                    continue
                if code >= 400:
                    raise self._fail(url, f"HTTP {code} {resp.reason}", status=code)
                try:
                    return read(resp)
                except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                    if last:
                        raise self._fail(url, f"body cut off {attempt + 1} times ({type(exc).__name__})", transient=True) from None
                    self._sleep(cfg.backoff * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns or raises

    # -- what providers call ------------------------------------------------------------
    def get_json(self, url: str, params: dict | None = None, headers: dict | None = None) -> Any:
        """GET a JSON API answer (size-capped like everything else)."""

        def read(resp: requests.Response) -> Any:
            body = self._read_capped(resp, url)
            try:
                return json.loads(body)
            except ValueError:
                raise self._fail(url, f"answer is not JSON (content-type {resp.headers.get('Content-Type', 'missing')})") from None

        return self.fetch(url, read, params=params, headers=headers)

    def get_image(self, url: str) -> bytes:
        """Download an image's bytes: content-type must be image/*, size at most `max_bytes`."""

        def read(resp: requests.Response) -> bytes:
            ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if not ctype.startswith("image/"):
                raise NotAnImageError(self.redact(url), f"content-type {ctype or 'missing'} is not an image")
            return self._read_capped(resp, url)

        return self.fetch(url, read)

    def get_body(self, url: str) -> tuple[str, bytes]:
        """Download whatever `url` is (a web page, an image), size-capped: (content type, body).

        For sources that may be either (a listed URL that is a page or an image itself);
        the caller decides by the content type and still checks an image by decoding it.
        """

        def read(resp: requests.Response) -> tuple[str, bytes]:
            return resp.headers.get("Content-Type", "").strip().lower(), self._read_capped(resp, url)

        return self.fetch(url, read)

    def _read_capped(self, resp: requests.Response, url: str) -> bytes:
        cap = self.config.max_bytes
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            raise self._fail(url, f"body of {int(declared)} bytes exceeds the size cap of {cap} bytes")
        buf = bytearray()
        for chunk in resp.iter_content(NET_CHUNK):
            buf += chunk
            if len(buf) > cap:
                raise self._fail(url, f"body exceeds the size cap of {cap} bytes (stopped reading)")
        return bytes(buf)
