"""The environment's proxy settings, looked up once per origin.

With ``trust_env`` (the default) requests asks the environment for proxies on
every call: ``get_environ_proxies`` walks every environment variable twice
(once to read ``*_proxy``, once more for ``no_proxy``) — about a quarter of a
keep-alive request's time on loopback. The answer depends only on the URL's
origin and on a handful of variables, so this cache keeps it per origin and
throws everything away as soon as one of those variables changes.
"""
from __future__ import annotations

import os
import threading
from typing import Dict, Mapping, Optional, Tuple

from requests.utils import get_environ_proxies

from .origins import url_prefix

__all__ = ["ProxyCache", "PROXY_VARIABLES"]

#: What decides the proxies of an http(s) URL: select_proxy only looks at the
#: URL's scheme and "all", and should_bypass_proxies at no_proxy.
PROXY_VARIABLES = tuple(
    name for base in ("http_proxy", "https_proxy", "all_proxy", "no_proxy") for name in (base, base.upper())
)


class ProxyCache:
    """``requests.utils.get_environ_proxies``, remembered per origin."""

    def __init__(self) -> None:
        self._snapshot: Optional[Tuple[Optional[str], ...]] = None
        self._proxies: Dict[Tuple[str, Optional[str]], Mapping[str, str]] = {}
        self._lock = threading.Lock()

    def environ_proxies(self, url: str, no_proxy: Optional[str]) -> Mapping[str, str]:
        """The environment's proxies for ``url`` (read-only: do not change it)."""
        get = os.environ.get
        snapshot = tuple(get(name) for name in PROXY_VARIABLES)
        key = (url_prefix(url), no_proxy)
        with self._lock:
            if snapshot != self._snapshot:
                self._snapshot, self._proxies = snapshot, {}
            proxies = self._proxies.get(key)
        if proxies is None:
            proxies = get_environ_proxies(url, no_proxy=no_proxy)
            with self._lock:
                if len(self._proxies) < 1024 and snapshot == self._snapshot:
                    self._proxies[key] = proxies
        return proxies
