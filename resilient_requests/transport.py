"""The adapter: requests' ``HTTPAdapter`` with pools sized to the bulkhead, a
send timeout, and a urllib3 ``Retry`` pinned so it never retries behind the
retry loop's back.

The pools keep at least ``max_concurrency`` connections per host, so the calls
the bulkhead lets through never see "Connection pool is full, discarding
connection". They do not block when every connection is checked out (as
requests' own do not): a connection is held by a ``stream=True`` response until
its body is read or it is closed, outside any bulkhead slot, and a blocking
pool lost those places for good when such responses were dropped unclosed —
every later call to the host then waited and failed (urllib3 never gets a
connection back from a response that is garbage-collected). Without blocking,
a call opens a fresh connection instead, and the pool refills as connections
come back. The bulkhead, not the pool, bounds the calls in flight.

urllib3 sends the request with the *connect* timeout on the socket; the
connection classes here switch it to ``TimeoutConfig.write`` once connected,
until urllib3 sets the read timeout for the response (on direct connections;
through a proxy urllib3's timeouts are kept). On every connection, direct or
through a proxy, they hand the socket to the call's deadline.

Tools that record and replay traffic (vcrpy) swap the ``ConnectionCls`` of
urllib3's pool classes for their own while a cassette is in use. Our pools
follow that swap: they pick their connection class each time they open a
connection, as urllib3's own pools do when they read the class attribute, so
a cassette sees the calls of sessions made before it, and the first
connection after it is a real one of ours again (see :class:`_ConnectionClass`).
"""
from __future__ import annotations

from typing import Any, Optional

from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util.retry import Retry

from . import deadline as deadlines
from .config import BulkheadConfig, TimeoutConfig

__all__ = ["ResilientAdapter", "ADAPTER_RETRY"]

#: The adapter's urllib3 Retry: connection-level only, and zero of those. The
#: retry loop owns every retry so that each attempt is logged, recorded by the
#: breaker and jittered in one place. ``respect_retry_after_header=False`` and
#: ``status=0`` close urllib3's trap of retrying 413/429/503 with Retry-After
#: whenever ``total`` is truthy; ``read=False`` re-raises read errors as they are.
ADAPTER_RETRY = Retry(
    total=0, connect=0, read=False, status=0, other=0, redirect=False,
    raise_on_status=False, respect_retry_after_header=False,
)


class _SendTimeoutMixin:
    """Puts ``write_timeout`` on the socket while the request is sent, and
    hands the socket to the call's deadline, if it has one. The pool sets
    ``write_timeout`` on a new connection (not through ``conn_kw``: a
    recording tool's connection class would get it too, and refuse it)."""

    sock: Any
    timeout: Any
    write_timeout: Optional[float] = None

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is None:
            self.connect()  # type: ignore[attr-defined]  # with the connect timeout
        deadline = deadlines.current()
        if deadline is not None:
            deadline.attach(self.sock)  # the watchdog may shut it down at the deadline
        if self.write_timeout is not None:
            # urllib3 calls sock.settimeout(self.timeout) for a connected socket
            # and replaces self.timeout with the read timeout after the send.
            self.timeout = self.write_timeout
        return super().request(*args, **kwargs)  # type: ignore[misc, no-any-return]


class _HTTPConnection(_SendTimeoutMixin, HTTPConnection):
    pass


class _HTTPSConnection(_SendTimeoutMixin, HTTPSConnection):
    pass


class _ConnectionClass:
    """The ``ConnectionCls`` of our pools, chosen each time a pool opens a
    connection (urllib3 reads ``self.ConnectionCls`` in ``_new_conn``) from
    what urllib3's own pool class holds at that moment:

    * urllib3's class: ours, with the write timeout and the deadline's socket.
    * anything else: a tool has patched it in (vcrpy's ``VCRRequestsHTTPConnection``
      while a cassette is in use), and plain requests would now use that class;
      so do we, or the cassette would neither see nor block our calls. Its
      connections are not ours, so on them the deadline cannot shut the socket
      down mid-attempt and the write timeout is not set: a replayed answer has
      no socket to bound, and a recorded one is sent by the tool through a
      connection of urllib3's own class, which we never get to hand the socket
      to. What still applies to that traffic: the connect and read timeouts
      (capped at what is left of the deadline; the tool passes them on), the
      deadline's checks before and after each attempt, retries, the breaker,
      the bulkhead and the rate limit, which all sit above the pool.

    Chosen per connection, not per pool: pools are cached per host, so a pool
    made under a cassette would otherwise keep the tool's class after it ends,
    and one made before it would keep sending to the network inside it. vcrpy
    also drops, while patched, pooled connections not of the patched class,
    and closes its own when the cassette ends; so neither kind crosses over.
    """

    def __init__(self, stock_pool: type, stock: type, ours: type) -> None:
        self.stock_pool = stock_pool
        self.stock = stock
        self.ours = ours

    def __get__(self, pool: Any, owner: Optional[type] = None) -> type:
        current: type = self.stock_pool.ConnectionCls  # type: ignore[attr-defined]
        return self.ours if current is self.stock else current


class _PoolMixin:
    """Gives a new connection of ours the pool's write timeout, and takes a
    connection's socket away from the call's deadline before the connection
    goes back to the pool (another call may pick it up at once)."""

    #: Set by ``_PoolManager._new_pool``; None (urllib3's timeouts) through a proxy.
    write_timeout: Optional[float] = None

    def _new_conn(self) -> Any:
        conn = super()._new_conn()  # type: ignore[misc]
        if isinstance(conn, _SendTimeoutMixin):
            conn.write_timeout = self.write_timeout
        return conn

    def _put_conn(self, conn: Any) -> None:
        deadline = deadlines.current()
        if deadline is not None and conn is not None:
            deadline.detach(getattr(conn, "sock", None))
        super()._put_conn(conn)  # type: ignore[misc]


class _HTTPPool(_PoolMixin, HTTPConnectionPool):
    ConnectionCls = _ConnectionClass(HTTPConnectionPool, HTTPConnection, _HTTPConnection)


class _HTTPSPool(_PoolMixin, HTTPSConnectionPool):
    ConnectionCls = _ConnectionClass(HTTPSConnectionPool, HTTPSConnection, _HTTPSConnection)


class _PoolManager(PoolManager):
    def __init__(self, *args: Any, write_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        self._write_timeout = write_timeout

    def _new_pool(self, scheme: str, host: str, port: int, request_context: Any = None) -> Any:
        # PoolKey has a fixed set of fields, so per-manager settings cannot
        # travel in connection_pool_kw; _new_pool is urllib3's documented hook.
        pool: Any = super()._new_pool(scheme, host, port, request_context)  # one of our pool classes
        pool.write_timeout = self._write_timeout
        return pool


class ResilientAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose pools fit the bulkhead and whose sends are bounded."""

    __attrs__ = HTTPAdapter.__attrs__ + ["write_timeout"]

    def __init__(self, timeout: TimeoutConfig, bulkhead: BulkheadConfig) -> None:
        self.write_timeout = timeout.write
        size = max(bulkhead.max_concurrency, 10)
        super().__init__(pool_connections=10, pool_maxsize=size, max_retries=ADAPTER_RETRY, pool_block=False)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """requests' proxy manager, with our pool classes, so a call through a
        proxy is bounded by its deadline too (urllib3's own connection classes
        never hand the socket to the watchdog: a trickling reply through a
        proxy outlived a 0.8 s deadline by 9 s). SOCKS keeps urllib3's."""
        fresh = proxy not in self.proxy_manager
        # Untyped in types-requests, which mypy uses where requests has no inline types (3.9).
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)  # type: ignore[no-untyped-call, unused-ignore]
        if fresh and not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        return manager

    def forget_connections(self) -> None:
        """Start with empty pools without touching the ones in use: in a forked
        child, whose inherited sockets are the parent's too (closing them here
        could also take locks a parent thread held at the fork)."""
        self.proxy_manager = {}
        self.init_poolmanager(self._pool_connections, self._pool_maxsize, self._pool_block)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        """Like requests', with our pool classes."""
        self._pool_connections = connections
        self._pool_maxsize = maxsize
        self._pool_block = block
        self.poolmanager = _PoolManager(
            num_pools=connections, maxsize=maxsize, block=block,
            write_timeout=self.write_timeout, **pool_kwargs,
        )
