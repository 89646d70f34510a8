"""``ResilientSession``: a ``requests.Session`` with the layers of :mod:`.pipeline`.

requests' own ``Session.send`` still does everything it always did (hooks,
cookies, redirects, reading the body); this class puts the bulkhead around it
and the retry loop and breaker around each call of the mounted adapter's
``send()``. It does that without replacing the adapter: while a call is in
progress on this thread, ``get_adapter`` hands requests a thin guard around
the mounted adapter, so ``session.get_adapter(url) is adapter`` stays true
for every caller outside a call.
"""
from __future__ import annotations

import contextlib
import logging
import re
import threading
import uuid
from typing import Any, Dict, Iterator, Mapping, Optional

import requests
from requests.adapters import BaseAdapter

from .breaker import CircuitState
from .config import ClientConfig
from .exceptions import error_for_status
from .pipeline import Pipeline, describe, origin_of
from .transport import ResilientAdapter

__all__ = ["ResilientSession", "create_resilient_client"]

_HAS_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


class _GuardedAdapter:
    """The mounted adapter, seen through layers 2-4 of the pipeline."""

    __slots__ = ("_adapter", "_pipeline")

    def __init__(self, adapter: BaseAdapter, pipeline: Pipeline) -> None:
        self._adapter = adapter
        self._pipeline = pipeline

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        return self._pipeline.hop(self._adapter, request, kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)


class _Shared:
    """What sessions built by the module-level API have in common."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.pipeline = Pipeline(config, _logger_for(config))
        self.adapters = {
            "https://": ResilientAdapter(config.timeout, config.bulkhead),
            "http://": ResilientAdapter(config.timeout, config.bulkhead),
        }


def _logger_for(config: ClientConfig) -> logging.Logger:
    logger = logging.getLogger(config.logging.logger_name)
    logger.setLevel(config.logging.levelno)  # the last session built wins
    return logger


class ResilientSession(requests.Session):
    """A ``requests.Session`` with timeouts, retries, per-origin circuit
    breakers and a bulkhead around every call. See :mod:`resilient_requests`."""

    __attrs__ = requests.Session.__attrs__ + ["config"]

    def __init__(self, config: Optional[ClientConfig] = None, *, _shared: Optional[_Shared] = None) -> None:
        super().__init__()
        if config is None:
            config = _shared.config if _shared is not None else ClientConfig()
        if not isinstance(config, ClientConfig):
            raise TypeError(f"ResilientSession config must be a ClientConfig, got {config!r}")
        self.config = config
        if _shared is not None:
            self._pipeline = _shared.pipeline
            self.adapters.clear()
            for prefix, adapter in _shared.adapters.items():
                self.mount(prefix, adapter)
        else:
            self._pipeline = Pipeline(config, _logger_for(config))
            self.mount("https://", ResilientAdapter(config.timeout, config.bulkhead))
            self.mount("http://", ResilientAdapter(config.timeout, config.bulkhead))
        self._local = threading.local()
        self.verify = config.verify_ssl
        if config.user_agent is not None:
            self.headers["User-Agent"] = config.user_agent

    # -- pickling: requests' __attrs__ plus the config; breakers start fresh --
    def __setstate__(self, state: Dict[str, Any]) -> None:
        super().__setstate__(state)
        self._pipeline = Pipeline(self.config, _logger_for(self.config))
        self._local = threading.local()

    # -- the resilient call --
    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """requests' ``send``, inside the bulkhead, with config timeouts and a request id."""
        local = self._local
        if getattr(local, "pipeline", None) is not None:
            # A redirect hop (or a hook's nested call) inside a call on this
            # thread: it already holds the bulkhead slot.
            return super().send(request, **kwargs)
        if kwargs.get("timeout") is None:
            timeout = self.config.timeout
            kwargs["timeout"] = (timeout.connect, timeout.read)
        if self.config.logging.include_request_id and "X-Request-ID" not in request.headers:
            request.headers["X-Request-ID"] = uuid.uuid4().hex
        pipeline = self._pipeline

        def send() -> requests.Response:
            local.pipeline = pipeline
            try:
                return super(ResilientSession, self).send(request, **kwargs)
            finally:
                local.pipeline = None

        response = pipeline.call(send)
        if self.config.raise_for_status:
            error = error_for_status(response)
            if error is not None:
                raise error
        return response

    def get_adapter(self, url: str) -> BaseAdapter:
        """The mounted adapter for ``url`` (guarded while a call is running)."""
        adapter = super().get_adapter(url)
        pipeline = getattr(self._local, "pipeline", None)
        if pipeline is None:
            return adapter
        return _GuardedAdapter(adapter, pipeline)  # type: ignore[return-value]

    # -- URLs and defaults --
    def absolute_url(self, url: Any) -> Any:
        """``url`` joined to ``config.base_url`` if it is relative, keeping the
        base's path (``http://h/api`` + ``/users/1`` -> ``http://h/api/users/1``)."""
        base = self.config.base_url
        if base is None or not isinstance(url, str) or _HAS_SCHEME.match(url) or url.startswith("//"):
            return url
        if not url or url.startswith(("?", "#")):
            return base + url
        return base.rstrip("/") + "/" + url.lstrip("/")

    def request(self, method: str, url: Any, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """``requests.Session.request``, with ``base_url`` and ``follow_redirects`` applied."""
        if len(args) < 8 and "allow_redirects" not in kwargs:  # 8th positional after url
            kwargs["allow_redirects"] = self.config.follow_redirects
        return super().request(method, self.absolute_url(url), *args, **kwargs)

    def get(self, url: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """GET, following redirects as ``config.follow_redirects`` says unless told."""
        kwargs.setdefault("allow_redirects", self.config.follow_redirects)
        return self.request("GET", url, **kwargs)

    def options(self, url: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """OPTIONS, following redirects as ``config.follow_redirects`` says unless told."""
        kwargs.setdefault("allow_redirects", self.config.follow_redirects)
        return self.request("OPTIONS", url, **kwargs)

    # -- introspection --
    def circuit_state(self, url: str) -> CircuitState:
        """The state of the breaker for ``url``'s origin."""
        return self._pipeline.breakers.get(origin_of(self.absolute_url(url))).state

    def describe(self) -> Mapping[str, Any]:
        """The resilience layers, outermost first, with their settings."""
        return describe(self._pipeline)


@contextlib.contextmanager
def create_resilient_client(config: Optional[ClientConfig] = None) -> Iterator[ResilientSession]:
    """Yield a :class:`ResilientSession` built from ``config`` and close it afterwards."""
    session = ResilientSession(config)
    try:
        yield session
    finally:
        session.close()
