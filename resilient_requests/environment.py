"""What requests reads from the environment on every call, read once until it changes.

With ``trust_env`` (the default) requests asks the environment, on every call,
for proxies — ``get_environ_proxies`` walks every environment variable twice
(once to read ``*_proxy``, once more for ``no_proxy``) — and for a netrc file
(``get_netrc_auth``: the ``NETRC`` and ``HOME`` variables, two path expansions
and a look for each candidate file). Together about a quarter of a keep-alive
request's time on loopback.

The proxies depend only on the URL's origin and on a handful of variables, so
:class:`ProxyCache` keeps them per origin and throws everything away as soon as
one of those variables changes. The netrc lookup keeps its candidate paths until
``NETRC`` or ``HOME`` change, and still looks for the files on every call (a
netrc file created while the process runs is seen at once); only when one
exists is requests' own ``get_netrc_auth`` asked, so the file's contents are
read as requests reads them.

The variables are read straight from ``os.environ``'s underlying mapping where
CPython has one (``os.environ._data``, keyed by encoded names): reading eight of
them through ``os.environ.get`` cost ~2 µs a call, this a tenth of that. The
mapping is what ``os.environ`` itself reads and writes, so nothing is missed.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, cast

import requests.sessions
import requests.utils
from requests.utils import get_environ_proxies

from .origins import url_prefix

__all__ = ["ProxyCache", "PROXY_VARIABLES", "NETRC", "netrc_auth"]

#: What decides the proxies of an http(s) URL: select_proxy only looks at the
#: URL's scheme and "all", and should_bypass_proxies at no_proxy.
PROXY_VARIABLES = tuple(
    name for base in ("http_proxy", "https_proxy", "all_proxy", "no_proxy") for name in (base, base.upper())
)


def _reader(names: Sequence[str]) -> Callable[[], Tuple[Any, ...]]:
    """A function returning the current values of the environment variables ``names``."""
    data = getattr(os.environ, "_data", None)
    encode = getattr(os.environ, "encodekey", None)
    if isinstance(data, dict) and callable(encode):
        keys = tuple(encode(name) for name in names)
        get = data.get
        return lambda: tuple(map(get, keys))  # values as stored (bytes on POSIX): compared only
    environ_get = os.environ.get
    return lambda: tuple(map(environ_get, names))


class ProxyCache:
    """``requests.utils.get_environ_proxies``, remembered per origin."""

    def __init__(self) -> None:
        self._read = _reader(PROXY_VARIABLES)
        self._snapshot: Optional[Tuple[Any, ...]] = None
        self._proxies: Dict[Tuple[str, Optional[str]], Mapping[str, str]] = {}
        self._lock = threading.Lock()  # for writers; readers take a consistent pair without it

    def environ_proxies(self, url: str, no_proxy: Optional[str]) -> Mapping[str, str]:
        """The environment's proxies for ``url`` (read-only: do not change it)."""
        snapshot = self._read()
        known, proxies_by_key = self._snapshot, self._proxies
        key = (url_prefix(url), no_proxy)
        proxies = proxies_by_key.get(key) if snapshot == known else None
        if proxies is None:
            proxies = get_environ_proxies(url, no_proxy=no_proxy)
            with self._lock:
                if snapshot != self._snapshot:
                    self._snapshot, self._proxies = snapshot, {}
                if len(self._proxies) < 1024:
                    self._proxies[key] = proxies
        return proxies


class _Netrc:
    """Where requests would look for a netrc file, kept until ``NETRC`` or ``HOME`` change."""

    def __init__(self) -> None:
        self._read = _reader(("NETRC", "HOME"))
        self._snapshot: Optional[Tuple[Any, ...]] = None
        self._places: Tuple[str, ...] = ()

    def places(self) -> Tuple[str, ...]:
        snapshot = self._read()
        if snapshot != self._snapshot:
            given = os.environ.get("NETRC")
            names = cast(Sequence[str], getattr(requests.utils, "NETRC_FILES", (".netrc", "_netrc")))
            places = (given,) if given is not None else tuple(os.path.expanduser(f"~/{name}") for name in names)
            self._snapshot, self._places = snapshot, places
        return self._places


NETRC = _Netrc()


def netrc_auth(url: str) -> Optional[Tuple[str, str]]:
    """What requests' ``get_netrc_auth(url)`` returns, asking it only when a netrc file exists."""
    lookup: Callable[[str], Optional[Tuple[str, str]]] = getattr(  # noqa: B009
        requests.sessions, "get_netrc_auth")  # where requests finds it (tests patch it there)
    if lookup is not requests.utils.get_netrc_auth:
        return lookup(url)
    for place in NETRC.places():
        if os.path.exists(place):
            return lookup(url)
    return None
