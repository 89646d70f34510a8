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
import os
import re
import threading
import types
from typing import Any, Callable, ClassVar, Dict, Iterable, Iterator, List, Mapping, Optional, cast

import requests
import requests.sessions
from requests.adapters import BaseAdapter
from urllib3 import PoolManager
from urllib3.util import Timeout

from . import forking
from .breaker import CircuitState
from .compartments import Registry
from .config import ClientConfig
from .environment import ProxyCache
from .exceptions import error_for_status
from .pipeline import Call, Pipeline, describe
from .preparation import merge, prepare
from .transport import ResilientAdapter

__all__ = ["ResilientMixin", "ResilientSession", "create_resilient_client"]

_HAS_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


def _requests_session() -> type:
    """requests' own ``Session`` class, even if a tool (``install()`` here,
    requests-cache's ``install_cache()``) stands another in its place."""
    for klass in requests.sessions.Session.__mro__:
        if klass.__module__ == "requests.sessions" and klass.__name__ == "Session":
            return klass
    raise ImportError("requests.sessions.Session is not requests' Session")  # pragma: no cover


#: requests' own ``Session`` (the base of every session here).
REQUESTS_SESSION: Any = _requests_session()


class _GuardedAdapter:
    """The mounted adapter, seen through layers 2-4 of the pipeline."""

    __slots__ = ("_adapter", "_call")

    def __init__(self, adapter: BaseAdapter, call: Call) -> None:
        self._adapter = adapter
        self._call = call

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        return self._call.hop(self._adapter, request, kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)


class _Shared:
    """What sessions built by the module-level API have in common."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.pipeline = Pipeline(config, _logger_for(config))
        self.adapters = {"https://": _adapter(config), "http://": _adapter(config)}


def _adapter(config: ClientConfig) -> ResilientAdapter:
    """An adapter whose pools hold as many connections per host as the largest
    bulkhead among the config's dependencies lets calls be in flight."""
    widest = max([config.bulkhead] + [d.config.bulkhead for d in config.dependencies.values()],
                 key=lambda bulkhead: bulkhead.max_concurrency)
    return ResilientAdapter(config.timeout, widest)


def _logger_for(config: ClientConfig) -> logging.Logger:
    """The library's logger; its level is set from the config only if nobody
    chose one: the application's own setting wins, then the first session built."""
    logger = logging.getLogger(config.logging.logger_name)
    if logger.level == logging.NOTSET:
        logger.setLevel(config.logging.levelno)
    return logger


def _not_a_config(config: Any) -> str:
    """Why ``config`` cannot be a session's config, and what to pass instead."""
    message = f"ResilientSession config must be a ClientConfig, got {config!r}"
    if isinstance(config, Mapping):
        return (message + ": build one from a mapping with ClientConfig.from_dict(...), e.g. "
                "ResilientSession(ClientConfig.from_dict({'retry': {'max_attempts': 3}}))")
    if isinstance(config, str):
        return message + ": for a preset, pass preset(name) (resilient_requests.preset)"
    return message


def _with_base_url(config: ClientConfig, base_url: str) -> ClientConfig:
    """``config`` with ``base_url``; a config with a different one is a conflict."""
    if config.base_url is not None and config.base_url != base_url:
        raise ValueError(
            f"ResilientSession got base_url={base_url!r} and a config with "
            f"base_url={config.base_url!r}; pass one of them"
        )
    if config.base_url == base_url:
        return config
    return config.replace(base_url=base_url)


class _AdapterLookup:
    """``get_adapter`` as a data descriptor, so no instance attribute can hide it.

    A tool may set ``session.get_adapter`` on an instance for a while
    (requests-mock's ``Mocker`` does, around every send, and puts back the
    *class's* method afterwards: a plain method of ours would stay hidden for
    good, and with it retries and the breaker). Here such an assignment is
    kept as an override that our lookup asks instead of the mounted adapters,
    whose answer is still guarded while a call runs; assigning requests' or
    our own method back removes the override.
    """

    def __get__(self, session: Any, owner: Any = None) -> Any:
        if session is None:
            return _get_adapter
        return types.MethodType(_get_adapter, session)

    def __set__(self, session: Any, value: Any) -> None:
        function = getattr(value, "__func__", value)
        if function is _get_adapter or function is REQUESTS_SESSION.get_adapter:
            session.__dict__.pop("_adapter_override", None)
        else:
            session.__dict__["_adapter_override"] = value

    def __delete__(self, session: Any) -> None:
        session.__dict__.pop("_adapter_override", None)


def _get_adapter(session: "ResilientMixin", url: str) -> BaseAdapter:
    """The mounted adapter for ``url`` (guarded while a call is running)."""
    override = session.__dict__.get("_adapter_override")
    adapter: BaseAdapter
    if override is not None:
        adapter = override(url)
    else:
        adapter = super(ResilientMixin, session).get_adapter(url)
    call = getattr(session._local, "call", None)
    if call is None:
        return adapter
    return _GuardedAdapter(adapter, call)  # type: ignore[return-value]


#: requests.Session and its own bases.
_REQUESTS_OWN = frozenset(REQUESTS_SESSION.__mro__)


def _starts_early(cls: type) -> bool:
    """Whether ``cls.request`` may begin the call before requests prepares
    anything: only when no other class in ``cls``'s bases sends (a cache's
    ``send`` may answer without sending: an open breaker must not refuse that)
    and none after ours re-dispatches ``request`` (a base-URL session joins the
    URL there; a futures session hands it to another thread). Otherwise the call
    begins in our ``send``, where a request is really about to go out."""
    ours = cls.__mro__.index(ResilientMixin)
    for position, klass in enumerate(cls.__mro__):
        if klass is ResilientMixin or klass in _REQUESTS_OWN:
            continue
        if "send" in vars(klass) or (position > ours and "request" in vars(klass)):
            return False
    return True


class _Handed:
    """A ``deadline=`` on its way from a verb method to our ``request()``."""

    __slots__ = ("deadline", "taken")

    def __init__(self, deadline: Optional[float]) -> None:
        self.deadline = deadline
        self.taken = False


def _lost_deadline(session: "ResilientMixin") -> None:
    """Say (once per session) that a ``deadline=`` could not be applied."""
    if session.__dict__.get("_lost_deadline_told"):
        return
    session.__dict__["_lost_deadline_told"] = True
    session._pipeline.log.warning(
        "deadline= was not applied: %s sent the request on another thread; the dependency's "
        "timeout.total applies (for a deadline per call, use FuturesSession(session=ResilientSession()))",
        type(session).__name__, extra={"outcome": "deadline_lost"},
    )


class ResilientMixin(REQUESTS_SESSION):  # type: ignore[misc]
    """Resilience for any ``requests.Session`` subclass: the layers of
    :mod:`.pipeline` around every call. :class:`ResilientSession` is this
    mixin on ``requests.Session``; combine it with another library's session
    class (requests-cache's ``CacheMixin``, requests-oauthlib's
    ``OAuth2Session``, toolbelt's ``BaseUrlSession``, ``FuturesSession``)::

        class ResilientOAuth(OAuth2Session, ResilientMixin):
            default_config = preset("web")

    Keyword arguments ``config=``, ``registry=`` and ``isolated=`` are taken
    here; every other argument goes on to the other bases. ``default_config``
    (a class attribute) is the config when none is passed. A cache goes
    *before* the mixin (``class S(CacheMixin, ResilientMixin)``), so that a
    cached answer is served while the breaker is open. See docs/guides/using-with/.
    """

    __attrs__ = REQUESTS_SESSION.__attrs__ + ["config"]

    #: The config of sessions of this class made without ``config=``
    #: (``None``: ``ClientConfig()``).
    default_config: ClassVar[Optional[ClientConfig]] = None

    #: Whether ``request()`` begins the call (set per class, see ``_starts_early``).
    _early: ClassVar[bool] = True
    #: Whether another base's ``request`` runs before ours (verbs then hand ``deadline=`` on the side).
    _hands: ClassVar[bool] = False

    get_adapter = _AdapterLookup()

    #: Whether ``prepare_request`` may use :func:`.preparation.prepare` (no base after ours overrides it).
    _own_prepare: ClassVar[bool] = True

    @classmethod
    def _chosen_config(cls, config: Any, shared: Optional[_Shared]) -> ClientConfig:
        """``config`` if given (checked), else the module-level API's, else the class's default."""
        if config is None:
            return shared.config if shared is not None else (cls.default_config or ClientConfig())
        if not isinstance(config, ClientConfig):
            raise TypeError(_not_a_config(config))
        return config

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._early = _starts_early(cls)
        cls._hands = cls.request is not ResilientMixin.request
        after = cls.__mro__[cls.__mro__.index(ResilientMixin) + 1:]
        cls._own_prepare = not any("prepare_request" in vars(klass) for klass in after if klass not in _REQUESTS_OWN)

    def __init__(self, *args: Any, config: Optional[ClientConfig] = None, registry: Optional[Registry] = None,
                 isolated: bool = False, _shared: Optional[_Shared] = None, **kwargs: Any) -> None:
        """See the class; ``registry=`` and ``isolated=`` as in :class:`ResilientSession`."""
        if isolated and registry is not None:
            raise ValueError("ResilientSession takes registry= or isolated=True, not both")
        config = self._chosen_config(config, _shared)
        self._local = threading.local()  # before the other bases: their __init__ may send already
        super().__init__(*args, **kwargs)
        self.config = config
        self._registry = Registry() if isolated else registry
        self._owns_registry = isolated
        self._shared = _shared is not None  # the module-level API's: its layers outlive it
        if _shared is not None:
            self._pipeline = _shared.pipeline
            self.adapters.clear()
            for prefix, adapter in _shared.adapters.items():
                self.mount(prefix, adapter)
        else:
            self._pipeline = Pipeline(config, _logger_for(config), self._registry)
            self.mount("https://", _adapter(config))
            self.mount("http://", _adapter(config))
        self._proxy_cache = ProxyCache()
        forking.track(self)
        self.verify = config.verify_ssl
        if not config.verify_ssl:
            self._pipeline.log.warning(
                "TLS certificate verification is off for this session (verify_ssl=False)",
                extra={"outcome": "verify_off"},
            )
        if config.user_agent is not None:
            self.headers["User-Agent"] = config.user_agent

    # -- pickling: requests' __attrs__ plus the config; breakers start fresh --
    def __setstate__(self, state: Dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[misc, unused-ignore]  # missing in types-requests
        self._registry = None
        self._owns_registry = False
        self._pipeline = Pipeline(self.config, _logger_for(self.config))
        self._shared = False
        self._local = threading.local()
        self._proxy_cache = ProxyCache()
        forking.track(self)

    def _after_fork(self) -> None:
        """In a forked child (see :mod:`.forking`): empty connection pools (the
        parent's sockets stay the parent's) and fresh resilience state; the
        listeners, config, headers, cookies and mounts are kept."""
        for adapter in self.adapters.values():
            if isinstance(adapter, ResilientAdapter):
                adapter.forget_connections()
        self._local = threading.local()
        self._proxy_cache = ProxyCache()
        if not self._shared:  # the module-level API's layers are made anew on its next call
            listeners = self._pipeline.events.listeners
            self._pipeline = Pipeline(self.config, _logger_for(self.config), self._registry)
            for listener in listeners:
                self._pipeline.events.add(listener)

    # -- the resilient call --
    def _call(self, method: str, url: str, run: Callable[[], requests.Response],
              deadline: Any = None) -> requests.Response:
        """Run ``run`` as one call: layer 1 and the fail-fast checks around it.

        ``request()`` enters here before requests prepares anything, so an open
        breaker or a full bulkhead costs no preparation; a direct ``send()`` enters
        here too. Redirect hops and calls nested in hooks run inside the call
        already on this thread.
        """
        local = self._local
        if getattr(local, "call", None) is not None:
            return run()
        pipeline = self._pipeline
        call = pipeline.start(method, url, None if deadline is None else self._deadline(deadline))
        local.call = call
        try:
            response = run()
        except BaseException as error:
            local.call = None
            pipeline.finish(call, None, error)
            raise
        local.call = None
        pipeline.finish(call, response, None)
        if self.config.raise_for_status:
            status_error = error_for_status(response)
            if status_error is not None:
                try:
                    raise status_error
                finally:
                    del status_error  # its traceback holds this frame: no cycle left
        return response

    @staticmethod
    def _deadline(deadline: Any) -> Optional[float]:
        if deadline is None:
            return None  # the dependency's timeout.total
        if isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not deadline > 0:
            raise ValueError(f"deadline must be a number of seconds > 0, got {deadline!r}")
        return float(deadline)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """requests' ``send``, inside the call, with config timeouts and a request id.
        ``deadline=`` (seconds) bounds this call instead of ``TimeoutConfig.total``."""
        deadline = kwargs.pop("deadline", None)
        timeout = kwargs.get("timeout")
        if timeout is None:
            # The dependency's timeouts; set here (not only in the hop) because
            # requests hands these kwargs on, e.g. to Digest auth's re-send.
            kwargs["timeout"] = self._pipeline.routes.get(request.url or "").default_timeout
        elif not _plainly_valid(timeout):
            _check_timeout(timeout)  # a bad one fails here, before any attempt: nothing is sent
        if deadline is None and not self._early:
            deadline = getattr(self._local, "deadline", None)  # handed on by our request()
            if deadline is not None:
                self._local.deadline = None
        return self._call(request.method or "", request.url or "",
                          lambda: self._send_in_call(request, kwargs), deadline)

    def _send_in_call(self, request: requests.PreparedRequest, kwargs: Dict[str, Any]) -> requests.Response:
        call = self._local.call
        if call.follow_redirects is None:  # the caller's send; requests sends each redirect with False
            call.follow_redirects = bool(kwargs.get("allow_redirects", True))
        request_id = call.request_id
        if request_id is not None and "X-Request-ID" not in request.headers:
            request.headers["X-Request-ID"] = request_id
        response: requests.Response = super().send(request, **kwargs)  # typed: the base is Any to mypy
        return response

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

    # The override ignores: requests' own types and types-requests (whichever mypy
    # finds) differ in what each of these three methods accepts.
    def request(self, method: str, url: Any, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override, unused-ignore]
        """``requests.Session.request``, with ``base_url`` and ``follow_redirects`` applied.
        ``deadline=`` (seconds) bounds this call instead of ``TimeoutConfig.total``."""
        deadline = kwargs.pop("deadline", None)
        if deadline is None and self._hands:
            handed = getattr(self._local, "handed", None)
            if handed and not handed[-1].taken:
                handed[-1].taken = True
                deadline = handed[-1].deadline
        if len(args) < 8 and "allow_redirects" not in kwargs:  # 8th positional after url
            kwargs["allow_redirects"] = self.config.follow_redirects
        if isinstance(url, bytes):
            url = url.decode("utf-8")
        if not isinstance(url, str):
            url = str(url)
        if self.config.base_url is not None:
            url = self.absolute_url(url)
        if not self._early:
            parent: requests.Session = super()  # type: ignore[assignment]  # mypy types it "super"
            # Another base sends or re-dispatches after us: the call begins in send().
            # A request made inside theirs before our send() runs (requests-oauthlib's
            # token refresh) has its own deadline, or none: the outer one waits for its send().
            pending = getattr(self._local, "deadline", None)
            if deadline is None and pending is None:
                return parent.request(method, url, *args, **kwargs)
            self._local.deadline = None if deadline is None else self._deadline(deadline)  # a bad one fails here
            try:
                return parent.request(method, url, *args, **kwargs)
            finally:
                if self._local.deadline is not None:
                    _lost_deadline(self)
                self._local.deadline = pending
        # Early, the next request() is requests' own (see _starts_early): called without a
        # super object, looked up on the class each time (a test may patch it there).
        return self._call(method.upper(), url,
                          lambda: REQUESTS_SESSION.request(self, method, url, *args, **kwargs), deadline)

    def _verb(self, method: str, url: Any, kwargs: Dict[str, Any]) -> requests.Response:
        """``self.request(method, url, **kwargs)``. When another base's ``request``
        runs before ours, ``deadline=`` is handed to ours on the side: it never
        reaches theirs (requests-oauthlib's sends arguments it does not know to
        the token endpoint as form fields)."""
        if not self._hands:
            return self.request(method, url, **kwargs)
        handed = _Handed(self._deadline(kwargs.pop("deadline", None)))
        stack = self._local.__dict__.setdefault("handed", [])
        stack.append(handed)  # a request made inside theirs (a token refresh) takes its own
        try:
            return self.request(method, url, **kwargs)
        finally:
            stack.pop()
            if handed.deadline is not None and not handed.taken:
                _lost_deadline(self)

    def get(self, url: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override, unused-ignore]
        """GET, following redirects as ``config.follow_redirects`` says unless told."""
        kwargs.setdefault("allow_redirects", self.config.follow_redirects)
        if not self._hands:  # the common case, one frame less
            return self.request("GET", url, **kwargs)
        return self._verb("GET", url, kwargs)

    def options(self, url: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override, unused-ignore]
        """OPTIONS, following redirects as ``config.follow_redirects`` says unless told."""
        kwargs.setdefault("allow_redirects", self.config.follow_redirects)
        return self._verb("OPTIONS", url, kwargs)

    def head(self, url: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override, unused-ignore]
        """HEAD (redirects not followed unless told, as in requests)."""
        kwargs.setdefault("allow_redirects", False)
        return self._verb("HEAD", url, kwargs)

    def post(self, url: Any, data: Any = None, json: Any = None, **kwargs: Any) -> requests.Response:  # type: ignore[override, unused-ignore]
        """POST (retried only when it never reached the server, or with an ``Idempotency-Key``)."""
        return self._verb("POST", url, dict(kwargs, data=data, json=json))

    def put(self, url: Any, data: Any = None, **kwargs: Any) -> requests.Response:  # type: ignore[override, unused-ignore]
        """PUT."""
        return self._verb("PUT", url, dict(kwargs, data=data))

    def patch(self, url: Any, data: Any = None, **kwargs: Any) -> requests.Response:  # type: ignore[override, unused-ignore]
        """PATCH (not idempotent: see :meth:`post`)."""
        return self._verb("PATCH", url, dict(kwargs, data=data))

    def delete(self, url: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override, unused-ignore]
        """DELETE."""
        return self._verb("DELETE", url, kwargs)

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        """requests' ``prepare_request``, step for step, with its merges done
        without requests' slow path (see :mod:`.preparation`)."""
        if self._own_prepare:
            return prepare(self, request)
        return cast(requests.PreparedRequest, super().prepare_request(request))

    def merge_environment_settings(  # type: ignore[override, unused-ignore]  # types-requests: a TypedDict
        self, url: str, proxies: Any, stream: Any, verify: Any, cert: Any,  # type: ignore[override, unused-ignore]
    ) -> Dict[str, Any]:
        """requests' own merge, with the environment's proxies looked up once per
        origin (see :mod:`.environment`) instead of on every call. The steps and
        their order are requests' ``Session.merge_environment_settings``; we
        re-state them because the lookup is a module function it calls inline."""
        if self.trust_env:
            no_proxy = proxies.get("no_proxy") if proxies is not None else None
            env_proxies = self._proxy_cache.environ_proxies(url, no_proxy)
            if proxies is not None:
                for key, value in env_proxies.items():
                    proxies.setdefault(key, value)
            if verify is True or verify is None:
                verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or verify
        return {
            "proxies": merge(proxies, self.proxies),
            "stream": merge(stream, self.stream),
            "verify": merge(verify, self.verify),
            "cert": merge(cert, self.cert),
        }

    # -- introspection --
    def circuit_state(self, url: str) -> CircuitState:
        """The state of the breaker for ``url``'s origin."""
        return self._pipeline.routes.compartment(self.absolute_url(url)).breaker.state

    def close(self) -> None:
        """Close the pooled connections and stop hedging's threads; the
        compartments stay in the registry for the other sessions (a private
        registry's Redis clients are closed)."""
        pools = [] if self._shared else _pools(self.adapters.values())
        super().close()
        # urllib3 2's PoolManager.clear() (what requests' close() calls) only
        # forgets its pools: a pool closes its idle connections when it is
        # garbage-collected, so while anything refers to it (a response the
        # caller still holds, an exception: MaxRetryError.pool, a reference
        # cycle) its sockets stay open. Close them now.
        for pool in pools:
            pool.close()
        if not self._shared:
            self._pipeline.close()
            if self._owns_registry:
                assert self._registry is not None
                self._registry.reset()

    def add_listener(self, listener: Any) -> None:
        """Register an observability listener (see :class:`resilient_requests.Listener`)."""
        self._pipeline.events.add(listener)

    def remove_listener(self, listener: Any) -> None:
        """Unregister a listener."""
        self._pipeline.events.remove(listener)

    def stats(self) -> Dict[str, Any]:
        """A snapshot: per origin the calls, successes, failures, retries,
        short-circuited and rejected calls and the breaker's state; and the
        bulkhead's capacity and slots in use. Cheap: a few dictionary copies.
        A call that failed before any attempt for a reason of its own (an
        invalid URL, header or timeout) is not one of the origin's ``calls``
        or ``failures``, but counts as ``not_sent``."""
        return self._pipeline.stats()

    def describe(self) -> Mapping[str, Any]:
        """The resilience layers, outermost first, with their settings."""
        return describe(self._pipeline)


class ResilientSession(ResilientMixin):
    """A ``requests.Session`` with timeouts, retries, per-origin circuit
    breakers and a bulkhead around every call. See :mod:`resilient_requests`."""

    def __init__(self, config: Optional[ClientConfig] = None, *, base_url: Optional[str] = None,
                 registry: Optional[Registry] = None, isolated: bool = False,
                 _shared: Optional[_Shared] = None, **kwargs: Any) -> None:
        """``config`` (default ``ClientConfig()``); ``base_url=`` sets its
        ``base_url`` (as httpx's ``Client(base_url=...)`` does). The breakers, bulkheads and
        budgets come from the process-wide registry of compartments (see
        :mod:`resilient_requests.compartments`), shared with every session
        calling the same dependency with the same policy; ``registry=`` uses
        another :class:`Registry`, and ``isolated=True`` a private one, so this
        session shares state with no other. Other keyword arguments go on to
        the next base (when this class is combined with another session class)."""
        if base_url is not None:
            config = _with_base_url(self._chosen_config(config, _shared), base_url)
        super().__init__(config=config, registry=registry, isolated=isolated, _shared=_shared, **kwargs)


def _plainly_valid(timeout: Any) -> bool:
    """The common shapes, checked without building urllib3 ``Timeout`` objects
    on every call: a positive number, or a pair of positive numbers / None."""
    if type(timeout) is float or type(timeout) is int:
        return bool(timeout > 0)
    return (type(timeout) is tuple and len(timeout) == 2
            and all(part is None or (type(part) in (float, int) and part > 0) for part in timeout))


def _check_timeout(timeout: Any) -> None:
    """Raise the ``ValueError`` requests' adapter would raise for ``timeout``
    (after the attempt had begun): a number, ``None``, a ``(connect, read)``
    pair of them, or urllib3's ``Timeout``."""
    if isinstance(timeout, Timeout):
        return
    if isinstance(timeout, tuple):
        try:
            connect, read = timeout
        except ValueError:
            raise ValueError(
                f"Invalid timeout {timeout}. Pass a (connect, read) timeout tuple, or a single float "
                "to set both timeouts to the same value."
            ) from None
        Timeout(connect=connect, read=read)
    else:
        Timeout(connect=timeout, read=timeout)


def _pools(adapters: Iterable[BaseAdapter]) -> List[Any]:
    """The connection pools of the session's own adapters (a mounted adapter of the
    caller's may be shared with other sessions: requests' ``close()`` is left to it)."""
    pools = []
    for adapter in adapters:
        if isinstance(adapter, ResilientAdapter):
            for manager in (adapter.poolmanager, *adapter.proxy_manager.values()):
                if not isinstance(manager, PoolManager):  # a ProxyManager is one too
                    continue
                for key in manager.pools.keys():
                    pool = manager.pools.get(key)
                    if pool is not None:
                        pools.append(pool)
    return pools


@contextlib.contextmanager
def create_resilient_client(config: Optional[ClientConfig] = None) -> Iterator[ResilientSession]:
    """Yield a :class:`ResilientSession` built from ``config`` and close it afterwards."""
    session = ResilientSession(config)
    try:
        yield session
    finally:
        session.close()
