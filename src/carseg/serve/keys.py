"""API keys and per-key rate limits, checked before anything reads a request's body, so a refused request costs no
model time. Keys are held only as SHA-256 digests, compared in constant time against every one of them, and never
logged or echoed; the remove.bg API's ``X-Api-Key`` header carries them, for carseg's own routes too."""
import hashlib
import hmac
import math
import os
import re
import time
from collections import deque
from pathlib import Path
from typing import Callable, Deque, Dict, Iterable, List, Optional, Tuple

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from carseg.errors import CarsegError
from carseg.serve.errors import answer

ENV = "CARSEG_API_KEYS"  # keys (or hashed keys) separated by commas or spaces, besides or instead of --api-keys FILE
HASHED = "sha256:"       # a hashed key: sha256: and the 64 hex digits of the key's SHA-256
MIN_LENGTH = 16          # characters of a key at least: shorter ones are guessable
PROTECTED = ("/api/", "/v1.0/")  # what needs a key; the web page, /health and /docs do not
UNCOUNTED = ("/v1.0/account",)   # needs a key, costs nothing: not counted against the rate limit
NEW_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(24))'"


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse_keys(entries: Iterable[str], source: str) -> List[bytes]:
    """The digests of ``entries`` (keys, or ``sha256:HEX`` hashed keys); ``source`` names where they came from in a
    one-line ``CarsegError`` for a bad one (which never quotes the key)."""
    digests = []
    for number, entry in enumerate(entries, 1):
        if entry.lower().startswith(HASHED):
            hexdigest = entry[len(HASHED):]
            if not re.fullmatch(r"[0-9a-fA-F]{64}", hexdigest):
                raise CarsegError(f"{source}: key {number}: a hashed key is sha256: and 64 hex digits (printf %s KEY "
                                  "| sha256sum)")
            digests.append(bytes.fromhex(hexdigest))
        elif len(entry) < MIN_LENGTH:
            raise CarsegError(f"{source}: key {number} has {len(entry)} characters, under {MIN_LENGTH}: too easy to "
                              f"guess; make one with {NEW_KEY}")
        else:
            digests.append(digest(entry))
    return digests


class KeyStore:
    """The service's keys as SHA-256 digests."""

    def __init__(self, digests: Iterable[bytes]):
        self.digests = tuple(digests)

    @classmethod
    def load(cls, path: Optional[Path] = None, env: Optional[str] = None) -> Optional["KeyStore"]:
        """The keys in ``path`` (one a line; blank lines and ``#`` comments skipped) and in ``env`` (the value of
        ``CARSEG_API_KEYS``); None when neither holds one."""
        digests: List[bytes] = []
        if path is not None:
            try:
                lines = path.read_text().splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise CarsegError(f"--api-keys {path}: cannot read it ({exc.__class__.__name__}); give a text file "
                                  "with one key a line") from None
            entries = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
            if not entries:
                raise CarsegError(f"--api-keys {path}: no key in it; put one key a line (make one with {NEW_KEY})")
            digests += parse_keys(entries, f"--api-keys {path}")
        if env:
            digests += parse_keys(env.replace(",", " ").split(), ENV)
        return cls(digests) if digests else None

    def match(self, key: Optional[str]) -> Optional[bytes]:
        """The digest ``key`` matches, or None; every digest is compared, in constant time, whatever matched."""
        if not key:
            return None
        given, found = digest(key), None
        for known in self.digests:
            if hmac.compare_digest(given, known):
                found = known
        return found

    def __len__(self) -> int:
        return len(self.digests)


def parse_rate(text: str) -> int:
    """``N/min`` -> N (requests a minute per key)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*min(ute)?\s*", text)
    if not match or int(match[1]) < 1:
        raise CarsegError(f"--rate-limit {text}: give requests a minute per key, e.g. 60/min")
    return int(match[1])


class RateLimiter:
    """At most ``per_minute`` requests in any 60 seconds per key (a sliding window of the times it was used)."""

    WINDOW = 60.0

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.per_minute, self.clock = per_minute, clock
        self.used: Dict[bytes, Deque[float]] = {}

    def _recent(self, who: bytes) -> Deque[float]:
        times = self.used.setdefault(who, deque())
        while times and times[0] <= self.clock() - self.WINDOW:
            times.popleft()
        return times

    def take(self, who: bytes) -> Tuple[bool, float]:
        """Count one request of ``who``: whether it is within the limit, and else the seconds until it would be."""
        times = self._recent(who)
        if len(times) >= self.per_minute:
            return False, times[0] + self.WINDOW - self.clock()
        times.append(self.clock())
        return True, 0.0

    def remaining(self, who: bytes) -> int:
        return self.per_minute - len(self._recent(who))

    def reset(self, who: bytes) -> int:
        """Seconds until the oldest request of the window leaves it (the next one frees up)."""
        times = self._recent(who)
        return math.ceil(times[0] + self.WINDOW - self.clock()) if times else 0


class ApiKeys:
    """403 for a request to ``PROTECTED`` routes without a known ``X-Api-Key`` (when the service has keys), 429 with
    ``Retry-After`` for one over the rate limit; the key's digest is left in ``scope["state"]["api_key"]`` (``b""``
    without keys: one limit shared by every client). Answers carry ``X-RateLimit-Limit/-Remaining/-Reset``."""

    def __init__(self, app: ASGIApp, keys: Optional[KeyStore], limiter: Optional[RateLimiter]):
        self.app, self.keys, self.limiter = app, keys, limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(PROTECTED):
            return await self.app(scope, receive, send)
        who = b""
        if self.keys is not None:
            key = Headers(scope=scope).get("x-api-key")
            who = self.keys.match(key)
            if who is None:
                problem = "wrong API key" if key else "no API key"
                return await answer(path, 403, f"{problem}: send a key this service knows (its --api-keys) in the "
                                    "X-Api-Key header", "auth_failed")(scope, receive, send)
        scope.setdefault("state", {})["api_key"] = who
        if self.limiter is None:
            return await self.app(scope, receive, send)
        if path not in UNCOUNTED:
            allowed, wait = self.limiter.take(who)
            if not allowed:
                seconds = max(1, math.ceil(wait))
                return await answer(path, 429, f"over the rate limit of {self.limiter.per_minute} requests a minute "
                                    f"(--rate-limit); retry in {seconds} s", "rate_limit_exceeded",
                                    {"Retry-After": str(seconds), **self.headers(who)})(scope, receive, send)

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(self.headers(who))
            await send(message)

        await self.app(scope, receive, send_with_limits)

    def headers(self, who: bytes) -> Dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limiter.per_minute),
                "X-RateLimit-Remaining": str(self.limiter.remaining(who)),
                "X-RateLimit-Reset": str(int(time.time()) + self.limiter.reset(who))}


def keys_from(path: Optional[Path]) -> Optional[KeyStore]:
    """``--api-keys FILE`` and ``CARSEG_API_KEYS`` together."""
    return KeyStore.load(path, os.environ.get(ENV))
