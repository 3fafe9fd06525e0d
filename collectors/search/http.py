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

Every request has a total deadline (`deadline`, seconds for the whole answer, headers
and body): a server that trickles bytes cannot hold a run (see daad.collectors.deadline).
A deadline that fires is not retried within the run: a server that slow will not be
quicker a second later, and the next run tries again.

Throttling: a 429 (or 503) says how long to wait in `Retry-After`, or, as Openverse's
anonymous quota does, only in its body ("Expected available in 3600 seconds"). Either is
read; a wait longer than `max_retry_after` stops with the time to run again, instead of
retrying into the closed quota.

Secrets (API keys, tokens) are registered with the session and replaced by `***` in
every error message it raises, since URLs with keys end up in exception texts.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable
from urllib.parse import urljoin, urlsplit

import requests

from daad.collectors import deadline as deadlines
from daad.core.errors import DaadError

DEFAULT_MAX_BYTES = 25 * 1024 * 1024  # a 50 MP JPEG is ~20 MB; anything larger is not a photo
REDIRECT_CODES = (301, 302, 303, 307, 308)
NET_CHUNK = 1 << 16
THROTTLE_BODY = 1 << 16  # how much of a 429/503 body is read for its wait
_AVAILABLE_IN = re.compile(r"available in (\d+(?:\.\d+)?) seconds?", re.I)  # Django REST framework's throttle text


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
    timeout: float = 30.0  # per socket read
    deadline: float = 120.0  # per request, whole answer: a 25 MB image at 250 kB/s fits
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


def _throttle_wait(resp: requests.Response) -> float | None:
    """Seconds a throttled answer asks to wait: Retry-After, else the body's "available in N seconds"."""
    asked = _retry_after(resp.headers.get("Retry-After"))
    if asked is not None:
        return asked
    try:
        body = resp.raw.read(THROTTLE_BODY, decode_content=True) or b""
    except Exception:  # the body is a hint only; an unreadable one means no hint
        return None
    m = _AVAILABLE_IN.search(body.decode("utf-8", "replace"))
    return float(m.group(1)) if m else None


def resume_after(seconds: float) -> str:
    """`HH:MM UTC` (with the date when not today): when a throttled run can be started again."""
    now = datetime.now(timezone.utc)
    when = now + timedelta(seconds=seconds + 59)
    return when.strftime("%H:%M UTC" if when.date() == now.date() else "%Y-%m-%d %H:%M UTC")


class PoliteSession:
    """A `requests.Session` wrapped with the checks above. Not shared between threads."""

    def __init__(self, config: HttpConfig, secrets: Iterable[str] = (), sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self._secrets = [s for s in secrets if s]
        self._sleep = sleep
        self._next_slot: dict[str, float] = {}
        self._lock = threading.Lock()
        self.session = deadlines.session()
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
            ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])  # str for IPv4/6; typed str | int for other families
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
        4xx answers (other than 429) fail at once: asking again will not help. Each try
        must complete within `deadline` seconds; one that does not fails the fetch.
        """
        cfg = self.config
        for attempt in range(cfg.retries + 1):
            last = attempt == cfg.retries
            with deadlines.deadline(cfg.deadline) as limit:
                try:
                    wait, out = self._try(url, read, params, headers, attempt, last)
                except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                    if limit.expired:
                        raise self._too_slow(url) from None
                    if last:
                        raise self._fail(url, f"connection failed or body cut off {attempt + 1} times ({type(exc).__name__})", transient=True) from None
                    self._sleep(cfg.backoff * 2**attempt)
                    continue
                if limit.expired:  # the answer may look complete: its socket was shut mid-way
                    raise self._too_slow(url)
            if wait is None:
                return out
            self._sleep(wait)  # outside the deadline: waiting as asked is not the server being slow
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns or raises

    def _too_slow(self, url: str) -> FetchError:
        return self._fail(url, f"no complete answer within the deadline of {self.config.deadline:g} s (the server sends too slowly); not retried in this run", transient=True)

    def _try(
        self, url: str, read: Callable[[requests.Response], Any], params: dict | None, headers: dict | None, attempt: int, last: bool
    ) -> tuple[float | None, Any]:
        """One try: (None, the answer read), or (seconds to wait, None) when the fetch should try again."""
        cfg = self.config
        with self._follow(url, params, headers) as resp:
            code = resp.status_code
            if code == 429 or code >= 500:
                asked = _throttle_wait(resp) if code in (429, 503) else None
                if asked is not None and asked > cfg.max_retry_after:
                    raise self._fail(
                        url,
                        f"HTTP {code}: the server asks to wait {asked:.0f} s (more than {cfg.max_retry_after:.0f} s); "
                        f"stopped without retrying: run again after {resume_after(asked)}",
                        transient=True,
                    )
                if last:
                    raise self._fail(url, f"HTTP {code} {resp.reason} after {attempt + 1} tries", transient=True)
                return (asked if asked is not None else cfg.backoff * 2**attempt), None
            if code >= 400:
                raise self._fail(url, f"HTTP {code} {resp.reason}", status=code)
            return None, read(resp)

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
