"""Origins (scheme, host, port): how a URL names the dependency it calls."""
from __future__ import annotations

from typing import Dict, Optional
from urllib.parse import urlsplit

__all__ = ["origin_of", "url_prefix", "loggable_url", "host_and_port"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ORIGINS: Dict[str, str] = {}


def url_prefix(url: str) -> str:
    """``url`` up to its path: ``scheme://netloc``, a cheap key for per-origin caches."""
    start = url.find("//")
    slash = url.find("/", start + 2) if start >= 0 else -1
    return url[:slash] if slash > 0 else url


def origin_of(url: str) -> str:
    """``scheme://host:port`` of ``url`` (cached per :func:`url_prefix`)."""
    key = url_prefix(url)
    origin = _ORIGINS.get(key)
    if origin is None:
        if len(_ORIGINS) >= 1024:
            _ORIGINS.clear()  # a crude bound; a process talks to few origins
        origin = _ORIGINS[key] = _parse_origin(key)
    return origin


def host_and_port(url: str) -> "tuple[str, str, Optional[int]]":
    """``url``'s scheme (lower case), host (an IPv6 address in brackets) and
    port if one is given (``None`` if absent or not a number)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme.lower(), host, port


def _parse_origin(url: str) -> str:
    scheme, host, port = host_and_port(url)
    return f"{scheme}://{host}:{port or _DEFAULT_PORTS.get(scheme, 0)}"


def loggable_url(url: str) -> str:
    """``url`` without credentials, query string or fragment."""
    scheme, host, port = host_and_port(url)
    path = urlsplit(url).path
    return f"{scheme}://{host}{f':{port}' if port else ''}{path}"
