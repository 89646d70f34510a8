"""Configuration: plain dataclasses, checked when they are made.

Every duration is a float number of seconds. A bad value raises ``TypeError``
(wrong type) or ``ValueError`` (wrong value) naming the class, the field, the
rule and the value, e.g. ``BulkheadConfig.max_concurrency must be >= 1, got 0``.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Mapping, Optional, Tuple

__all__ = [
    "TimeoutConfig",
    "RetryConfig",
    "CircuitBreakerConfig",
    "BulkheadConfig",
    "LoggingConfig",
    "ThrottleConfig",
    "HedgeConfig",
    "RateLimitConfig",
    "DependencyConfig",
    "ClientConfig",
    "IDEMPOTENT_METHODS",
]

#: Methods that may be sent twice without changing the outcome (RFC 9110 §9.2.2).
IDEMPOTENT_METHODS: FrozenSet[str] = frozenset(
    {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"}
)

_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET")


def _where(obj: object, name: str) -> str:
    return f"{type(obj).__name__}.{name}"


def _number(obj: object, name: str, *, minimum: float = 0.0, strict: bool = False,
            optional: bool = False) -> None:
    """Check that ``obj.name`` is a real, finite number above ``minimum``."""
    value = getattr(obj, name)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{_where(obj, name)} must be a number, got {value!r}")
    try:
        finite = math.isfinite(float(value))
    except OverflowError:  # an int beyond float range
        finite = False
    if not finite:
        raise ValueError(f"{_where(obj, name)} must be a finite number, got {value!r}")
    if strict and value <= minimum:
        raise ValueError(f"{_where(obj, name)} must be > {minimum:g}, got {value!r}")
    if not strict and value < minimum:
        raise ValueError(f"{_where(obj, name)} must be >= {minimum:g}, got {value!r}")
    setattr(obj, name, float(value))


def _integer(obj: object, name: str, *, minimum: int) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{_where(obj, name)} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{_where(obj, name)} must be >= {minimum}, got {value!r}")


def _flag(obj: object, name: str) -> None:
    value = getattr(obj, name)
    if not isinstance(value, bool):
        raise TypeError(f"{_where(obj, name)} must be a bool, got {value!r}")


def _statuses(obj: object, name: str) -> None:
    value = getattr(obj, name)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{_where(obj, name)} must be a collection of status codes, got {value!r}")
    codes = frozenset(value)
    for code in codes:
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(f"{_where(obj, name)} must hold int status codes, got {code!r}")
        if not 100 <= code <= 599:
            raise ValueError(f"{_where(obj, name)} holds {code!r}, not an HTTP status (100-599)")
    setattr(obj, name, codes)


def _is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


#: What to install for a Redis ``storage``.
REDIS_HINT = "pip install 'resilient_requests[redis]'"


def require_redis(needed_by: str = "a Redis storage") -> Any:
    """The ``redis`` module, with what :func:`.shared_state.connect` uses of it; else an
    ``ImportError`` saying that ``needed_by`` needs it and what to install."""
    try:
        import redis
        import redis.backoff  # noqa: F401
        import redis.retry  # noqa: F401
    except ImportError as error:
        raise ImportError(f"{needed_by} needs the redis package: {REDIS_HINT} ({error})") from None
    return redis


def _instance(obj: object, name: str, cls: type) -> None:
    value = getattr(obj, name)
    if not isinstance(value, cls):
        raise TypeError(f"{_where(obj, name)} must be a {cls.__name__}, got {value!r}")


@dataclass
class TimeoutConfig:
    """Per-phase timeouts, in seconds.

    ``connect`` bounds opening a connection; ``read`` bounds each wait for bytes
    from the server; ``write`` bounds each socket send of the request;
    ``pool`` is accepted and checked but no longer waited on: pools do not
    block (a call opens a fresh connection when every pooled one is checked
    out; the bulkhead bounds the calls in flight). ``total`` bounds
    the whole call — every attempt, every wait and reading the body (with
    ``stream=True``: until the response is returned); ``None`` = no bound.
    """

    connect: float = 10.0
    read: float = 30.0
    write: float = 15.0
    pool: float = 5.0
    total: Optional[float] = None

    def __post_init__(self) -> None:
        for name in ("connect", "read", "write", "pool"):
            _number(self, name, strict=True)
        _number(self, "total", strict=True, optional=True)


@dataclass
class RetryConfig:
    """How a failed call is tried again.

    ``max_attempts`` counts the first try: 3 means at most three requests reach
    the server. The n-th retry waits ``min_wait * multiplier ** (n - 1)``,
    capped at ``max_wait``; with ``jitter`` a uniform draw between 0 and that
    ("full jitter"). A server's ``Retry-After`` on 429/503 replaces the
    computed wait (capped at ``max_wait``) and is never jittered.

    The retry budget, per origin: over the last ``budget_window`` seconds,
    retries may add at most ``budget_ratio`` of the calls plus
    ``budget_floor`` retries per second; beyond that a failure is returned at
    once. ``budget_ratio=None`` switches the budget off.
    """

    max_attempts: int = 3
    min_wait: float = 1.0
    max_wait: float = 60.0
    multiplier: float = 2.0
    jitter: bool = True
    retry_on_status: FrozenSet[int] = frozenset({429, 500, 502, 503, 504})
    budget_ratio: Optional[float] = 0.2
    budget_floor: float = 1.0
    budget_window: float = 10.0

    def __post_init__(self) -> None:
        _integer(self, "max_attempts", minimum=1)
        _number(self, "min_wait")
        _number(self, "max_wait")
        _number(self, "multiplier", minimum=1.0)
        _flag(self, "jitter")
        _statuses(self, "retry_on_status")
        _number(self, "budget_ratio", optional=True)
        _number(self, "budget_floor")
        _number(self, "budget_window", strict=True)
        if self.max_wait < self.min_wait:
            raise ValueError(
                f"RetryConfig.max_wait must be >= min_wait ({self.min_wait!r}), got {self.max_wait!r}"
            )


@dataclass
class CircuitBreakerConfig:
    """One breaker per origin: opens after ``failure_threshold`` consecutive
    failures; after ``recovery_timeout`` seconds it turns half-open and admits
    ``permitted_calls_in_half_open`` trial calls (every other call still fails
    fast). A failed trial re-opens it at once; that many successful trials close
    it. A trial holds its place for at most ``trial_timeout`` seconds (``None``:
    as long as one attempt may last, from :class:`TimeoutConfig`), so a trial
    that never ends cannot keep the breaker half-open.

    Each re-opening after a failed trial stays open ``recovery_multiplier``
    times longer than the last, up to ``max_recovery_timeout`` (``None``: ten
    times ``recovery_timeout``); closing starts again from ``recovery_timeout``.

    ``failure_statuses`` are responses that count as failures, whether or not
    the caller asked for errors to be raised; every other response is a success.

    ``policy="rate"`` opens instead on the share of failures (and, with
    ``slow_call_duration``, of calls slower than that, even successful ones)
    among the last ``window_size`` calls (``window_type="count"``) or seconds
    (``"time"``), once ``minimum_calls`` were seen, as Resilience4j and Polly do.
    The window is kept per process; the state it opens is stored like any other.

    ``storage``: ``None`` keeps the state in this process; a Redis URL or a
    ``redis.Redis`` client shares it with every process that names the same
    storage and ``namespace`` (see :mod:`.shared_state`). Each Redis call waits
    at most ``storage_timeout``; reads may be ``state_cache_ttl`` seconds old.
    A Redis call that fails is answered from the last known shared state; after
    three failures in a row the origin uses local state, started from the last
    known shared state (an open breaker stays open), for ``storage_retry`` seconds.

    ``storage_timeout`` (0.25 s) bounds a wait that only a troubled Redis makes
    long: a healthy one answers in well under a millisecond, but on a loaded
    host the answer waits for a CPU. With 16-32 busy processes on 2 CPUs
    (load 8-16 per CPU), a cached read took 8-36 ms at p99 and 13-118 ms at
    p99.9; 0.02-0.5 % took over 50 ms (the old default), 0-0.025 % over 250 ms,
    and never two in a row over 50 ms. Each wait is on a caller's path, so it is
    not longer: a hung Redis costs the first few calls 3 x 0.25 s before the
    local state takes over, then one call per ``storage_retry``.
    """

    failure_threshold: int = 5
    recovery_timeout: float = 30.0
    failure_statuses: FrozenSet[int] = frozenset({500, 502, 503, 504})
    policy: str = "consecutive"
    failure_rate_threshold: float = 0.5
    window_type: str = "count"
    window_size: float = 100.0
    minimum_calls: int = 20
    slow_call_duration: Optional[float] = None
    slow_call_rate_threshold: float = 1.0
    permitted_calls_in_half_open: int = 1
    trial_timeout: Optional[float] = None
    recovery_multiplier: float = 1.0
    max_recovery_timeout: Optional[float] = None
    storage: Any = None
    namespace: str = "resilient_requests"
    storage_timeout: float = 0.25
    state_cache_ttl: float = 0.1
    storage_retry: float = 5.0

    def __post_init__(self) -> None:
        _integer(self, "failure_threshold", minimum=1)
        _number(self, "recovery_timeout", strict=True)
        _statuses(self, "failure_statuses")
        if self.policy not in ("consecutive", "rate"):
            raise ValueError(f"CircuitBreakerConfig.policy must be 'consecutive' or 'rate', got {self.policy!r}")
        if self.window_type not in ("count", "time"):
            raise ValueError(f"CircuitBreakerConfig.window_type must be 'count' or 'time', got {self.window_type!r}")
        for name in ("failure_rate_threshold", "slow_call_rate_threshold"):
            given = getattr(self, name)
            _number(self, name, strict=True)
            if getattr(self, name) > 1.0:
                raise ValueError(f"CircuitBreakerConfig.{name} must be a share <= 1, got {given!r}")
        given = self.window_size
        _number(self, "window_size", strict=True)
        if self.window_type == "count" and self.window_size < 1:
            raise ValueError(f"CircuitBreakerConfig.window_size must be >= 1 call, got {given!r}")
        _integer(self, "minimum_calls", minimum=1)
        _number(self, "slow_call_duration", strict=True, optional=True)
        _integer(self, "permitted_calls_in_half_open", minimum=1)
        _number(self, "trial_timeout", strict=True, optional=True)
        _number(self, "recovery_multiplier", minimum=1.0)
        _number(self, "max_recovery_timeout", strict=True, optional=True)
        if self.max_recovery_timeout is not None and self.max_recovery_timeout < self.recovery_timeout:
            raise ValueError(
                f"CircuitBreakerConfig.max_recovery_timeout must be >= recovery_timeout "
                f"({self.recovery_timeout:g}), got {self.max_recovery_timeout!r}"
            )
        storage = self.storage
        if isinstance(storage, str):
            if not storage.startswith(("redis://", "rediss://", "unix://")):
                raise ValueError(
                    f"CircuitBreakerConfig.storage must be a redis://, rediss:// or unix:// URL, got {storage!r}"
                )
            # Here, not at the first call: a missing package is a deployment's mistake,
            # best seen when the config is read. (No URL in the message: it may hold a password.)
            require_redis("CircuitBreakerConfig.storage (a Redis URL)")
        elif storage is not None and not (hasattr(storage, "register_script") and hasattr(storage, "hmget")):
            raise TypeError(
                f"CircuitBreakerConfig.storage must be None, a Redis URL or a redis.Redis client, got {storage!r}"
            )
        if not isinstance(self.namespace, str) or not self.namespace:
            raise ValueError(f"CircuitBreakerConfig.namespace must be a non-empty str, got {self.namespace!r}")
        _number(self, "storage_timeout", strict=True)
        _number(self, "state_cache_ttl")
        _number(self, "storage_retry", strict=True)

    @property
    def recovery_cap(self) -> float:
        """The longest open period: ``max_recovery_timeout``, or ten times ``recovery_timeout``."""
        return self.max_recovery_timeout if self.max_recovery_timeout is not None else 10 * self.recovery_timeout

    def open_for(self, reopens: int) -> float:
        """Seconds the breaker stays open after ``reopens`` failed trials in a row."""
        base, multiplier, cap = self.recovery_timeout, self.recovery_multiplier, self.recovery_cap
        if reopens <= 0 or multiplier == 1.0:
            return base
        # Compared in logarithms, so a long outage cannot overflow the power.
        if reopens * math.log(multiplier) >= math.log(cap / base):
            return cap
        return float(base * multiplier**reopens)


@dataclass
class ThrottleConfig:
    """Client-side adaptive throttling per origin (Google SRE book): over the last
    ``window`` seconds, reject calls locally with probability
    ``max(0, (requests - k * accepts) / (requests + 1))``. Off unless ``enabled``."""

    enabled: bool = False
    k: float = 2.0
    window: float = 120.0

    def __post_init__(self) -> None:
        _flag(self, "enabled")
        _number(self, "k", minimum=1.0)
        _number(self, "window", strict=True)


@dataclass
class RateLimitConfig:
    """A dependency's rate limit, kept by the client (see :mod:`.ratelimit`).
    Off unless ``rate``, ``adaptive`` or ``cooldown`` is set.

    ``rate`` permits per ``per`` seconds, in bursts of up to ``burst`` (default
    1: an even pace, so a server counting over any window of ``per`` seconds
    never sees more than ``rate``), paced ``margin`` (2%) under ``rate`` so that
    jitter does not push a window over; every attempt and every hedge takes one. A
    call waits up to ``max_wait`` seconds for a permit (bounded by its
    deadline; 0 = fail fast with ``RateLimitedError``, for web views).
    ``adaptive`` learns a rate from the dependency's throttling answers (down to
    ``min_rate`` per second) where none is configured, or stays below it.
    ``cooldown``: a 429/503 with ``Retry-After`` (or ``RateLimit-Remaining: 0``)
    pauses the whole dependency until then, at most ``max_pause`` seconds.
    ``shared`` keeps the permits and the pause in the breaker's Redis storage,
    one limit for every process; while Redis is unreachable each process uses
    ``fallback_share`` of the rate on its own (e.g. 0.25 with four workers).
    """

    rate: Optional[float] = None
    per: float = 1.0
    margin: float = 0.02
    burst: Optional[int] = None
    max_wait: float = 0.0
    adaptive: bool = False
    min_rate: float = 0.5
    cooldown: bool = False
    max_pause: float = 300.0
    shared: bool = False
    fallback_share: float = 1.0

    def __post_init__(self) -> None:
        _number(self, "rate", strict=True, optional=True)
        _number(self, "per", strict=True)
        given = self.margin
        _number(self, "margin")
        if self.margin >= 1.0:
            raise ValueError(f"RateLimitConfig.margin must be a share < 1, got {given!r}")
        if self.burst is not None:
            _integer(self, "burst", minimum=1)
        _number(self, "max_wait")
        _flag(self, "adaptive")
        _number(self, "min_rate", strict=True)
        _flag(self, "cooldown")
        _number(self, "max_pause", strict=True)
        _flag(self, "shared")
        given = self.fallback_share
        _number(self, "fallback_share", strict=True)
        if self.fallback_share > 1.0:
            raise ValueError(f"RateLimitConfig.fallback_share must be a share <= 1, got {given!r}")

    @property
    def enabled(self) -> bool:
        """Whether the dependency has a limiter at all."""
        return self.rate is not None or self.adaptive or self.cooldown


#: Methods hedged by default: safe ones, which no server should mind receiving twice at once.
HEDGED_METHODS: FrozenSet[str] = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class HedgeConfig:
    """Hedged requests, off unless ``enabled``: when an attempt has no answer
    after a delay, send the same request once more on another connection, take
    the first good answer and cancel the other (the tail-latency cut of Envoy,
    gRPC and Finagle). Only ``methods`` (a subset of the idempotent methods)
    with a body that can be sent twice are hedged, and never a half-open trial.

    The delay is ``delay`` seconds, or (``delay=None``) the origin's recent
    ``percentile`` of attempt latency, once ``min_samples`` answers were seen;
    until then no call is hedged. Up to ``max_hedges`` extra attempts start,
    one per delay. Each takes a bulkhead slot without waiting and a retry from
    the origin's budget; with neither free, no hedge is sent.
    """

    enabled: bool = False
    delay: Optional[float] = None
    percentile: float = 0.95
    min_samples: int = 20
    max_hedges: int = 1
    methods: FrozenSet[str] = HEDGED_METHODS

    def __post_init__(self) -> None:
        _flag(self, "enabled")
        _number(self, "delay", optional=True)
        given = self.percentile
        _number(self, "percentile", strict=True)
        if self.percentile >= 1.0:
            raise ValueError(f"HedgeConfig.percentile must be a share < 1, got {given!r}")
        _integer(self, "min_samples", minimum=1)
        _integer(self, "max_hedges", minimum=1)
        methods = self.methods
        if isinstance(methods, (str, bytes)) or not hasattr(methods, "__iter__"):
            raise TypeError(f"HedgeConfig.methods must be a collection of method names, got {methods!r}")
        names = frozenset(str(name).upper() for name in methods)
        if not names or not names <= IDEMPOTENT_METHODS:
            raise ValueError(
                f"HedgeConfig.methods must be idempotent methods ({', '.join(sorted(IDEMPOTENT_METHODS))}), "
                f"got {methods!r}"
            )
        self.methods = names


@dataclass
class BulkheadConfig:
    """At most ``max_concurrency`` calls in flight to one dependency (its
    compartment, shared by every session in the process); a caller waits up to
    ``acquisition_timeout`` seconds for a slot (0 = do not wait)."""

    max_concurrency: int = 50
    acquisition_timeout: float = 30.0

    def __post_init__(self) -> None:
        _integer(self, "max_concurrency", minimum=1)
        _number(self, "acquisition_timeout")


@dataclass
class LoggingConfig:
    """The library's own logger: its name, its level, and whether each call
    carries an ``X-Request-ID`` header (a caller's own value is kept)."""

    level: str = "INFO"
    include_request_id: bool = True
    logger_name: str = "resilient_requests"

    def __post_init__(self) -> None:
        if not isinstance(self.level, str):
            raise TypeError(f"LoggingConfig.level must be a str, got {self.level!r}")
        if self.level.upper() not in _LOG_LEVELS:
            raise ValueError(
                f"LoggingConfig.level must be one of {', '.join(_LOG_LEVELS)}, got {self.level!r}"
            )
        self.level = self.level.upper()
        _flag(self, "include_request_id")
        if not isinstance(self.logger_name, str):
            raise TypeError(f"LoggingConfig.logger_name must be a str, got {self.logger_name!r}")
        if not self.logger_name:
            raise ValueError(f"LoggingConfig.logger_name must be a non-empty str, got {self.logger_name!r}")

    @property
    def levelno(self) -> int:
        """The level as the ``logging`` module's number."""
        return logging.getLevelName(self.level)  # type: ignore[no-any-return]


@dataclass
class DependencyConfig:
    """One dependency of :attr:`ClientConfig.dependencies`: the ``origins`` it
    answers on (``scheme://host[:port]``, normalised) and the ``config`` of its
    layers. Usually made for you from the shorter forms ``ClientConfig`` accepts."""

    origins: Tuple[str, ...]
    config: "ClientConfig"

    def __post_init__(self) -> None:
        from .origins import origin_of

        origins = self.origins
        if isinstance(origins, str) or not hasattr(origins, "__iter__"):
            raise TypeError(f"DependencyConfig.origins must be a list of origin URLs, got {origins!r}")
        normalised = []
        for url in origins:
            if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
                raise ValueError(f"DependencyConfig.origins must hold http(s) origin URLs, got {url!r}")
            normalised.append(origin_of(url))
        if not normalised:
            raise ValueError(f"DependencyConfig.origins must name at least one origin, got {origins!r}")
        self.origins = tuple(normalised)
        _instance(self, "config", ClientConfig)


@dataclass
class ClientConfig:
    """Everything a :class:`~resilient_requests.ResilientSession` needs.

    ``dependencies`` gives some dependencies layers of their own; the others
    get this config's. A key is an origin URL, or a name for a group of origins
    that share one compartment; a value is a ``ClientConfig``, or a mapping of
    overrides of this config (``{"timeout": {"read": 120}}``, optionally with a
    ``"preset"`` to start from instead), which for a name also lists its
    ``"origins"``::

        ClientConfig(dependencies={
            "https://payments.internal": preset("fast_microservice"),
            "https://reports.internal": {"timeout": {"read": 120}},
            "search": {"origins": ["https://s1.internal", "https://s2.internal"],
                       "preset": "high_latency"},
        })

    The sections ``timeout``, ``retry``, ``circuit_breaker``, ``bulkhead``,
    ``throttle``, ``hedge`` and ``rate_limit`` apply per dependency; the top-level fields
    (``base_url``, ``follow_redirects``, ``verify_ssl``, ``user_agent``,
    ``raise_for_status``, ``logging``, ``total_concurrency``) are the
    session's. ``total_concurrency`` caps one session's calls in flight over
    every dependency (``None``: no such cap; each dependency's bulkhead still
    applies); for the module-level API that is the whole process. Each value is
    normalised to a :class:`DependencyConfig`, keyed by the name (an origin URL
    key becomes its normalised origin).
    """

    base_url: Optional[str] = None
    timeout: TimeoutConfig = field(default_factory=TimeoutConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    circuit_breaker: CircuitBreakerConfig = field(default_factory=CircuitBreakerConfig)
    bulkhead: BulkheadConfig = field(default_factory=BulkheadConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    throttle: ThrottleConfig = field(default_factory=ThrottleConfig)
    hedge: HedgeConfig = field(default_factory=HedgeConfig)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    follow_redirects: bool = True
    verify_ssl: bool = True
    user_agent: Optional[str] = None
    raise_for_status: bool = False
    dependencies: Dict[str, Any] = field(default_factory=dict)
    total_concurrency: Optional[int] = None

    def __post_init__(self) -> None:
        if self.base_url is not None:
            if not isinstance(self.base_url, str):
                raise TypeError(f"ClientConfig.base_url must be a str or None, got {self.base_url!r}")
            if not self.base_url.lower().startswith(("http://", "https://")):
                raise ValueError(
                    f"ClientConfig.base_url must start with http:// or https://, got {self.base_url!r}"
                )
        _instance(self, "timeout", TimeoutConfig)
        _instance(self, "retry", RetryConfig)
        _instance(self, "circuit_breaker", CircuitBreakerConfig)
        _instance(self, "bulkhead", BulkheadConfig)
        _instance(self, "logging", LoggingConfig)
        _instance(self, "throttle", ThrottleConfig)
        _instance(self, "hedge", HedgeConfig)
        _instance(self, "rate_limit", RateLimitConfig)
        for name in ("follow_redirects", "verify_ssl", "raise_for_status"):
            _flag(self, name)
        if self.user_agent is not None and not isinstance(self.user_agent, str):
            raise TypeError(f"ClientConfig.user_agent must be a str or None, got {self.user_agent!r}")
        if self.total_concurrency is not None:
            _integer(self, "total_concurrency", minimum=1)
        if self.rate_limit.shared and self.circuit_breaker.storage is None:
            raise ValueError(
                "ClientConfig.rate_limit.shared=True needs a Redis in circuit_breaker.storage, got storage=None"
            )
        self._normalise_dependencies()

    def _normalise_dependencies(self) -> None:
        given = self.dependencies
        if not isinstance(given, Mapping):
            raise TypeError(f"ClientConfig.dependencies must be a mapping, got {given!r}")
        dependencies: Dict[str, DependencyConfig] = {}
        routes: Dict[str, Tuple[str, ClientConfig]] = {}
        for key, value in given.items():
            where = f"ClientConfig.dependencies[{key!r}]"
            if not isinstance(key, str) or not key:
                raise TypeError(f"ClientConfig.dependencies keys must be origin URLs or names, got {key!r}")
            dependency = self._dependency(key, value, where)
            name = dependency.origins[0] if _is_url(key) else key
            for origin in dependency.origins:
                if origin in routes:
                    raise ValueError(f"{where}: origin {origin} is already in dependency {routes[origin][0]!r}")
                routes[origin] = (name, dependency.config)
            dependencies[name] = dependency
        self.dependencies = dependencies
        self._routes = routes

    def _dependency(self, key: str, value: Any, where: str) -> DependencyConfig:
        if isinstance(value, DependencyConfig):
            return value
        origins: Any = (key,) if _is_url(key) else None
        if isinstance(value, ClientConfig):
            config = value
        elif isinstance(value, Mapping):
            overrides = dict(value)
            if "origins" in overrides:
                if origins is not None:
                    raise ValueError(f"{where}: an origin URL key takes no 'origins' (use a name as the key)")
                origins = overrides.pop("origins")
            config = self._overridden(overrides, where)
        else:
            raise TypeError(f"{where} must be a ClientConfig or a mapping of overrides, got {value!r}")
        if config.dependencies:
            raise ValueError(f"{where}: a dependency's config cannot have dependencies of its own")
        if origins is None:
            raise ValueError(f"{where}: a named dependency must list its 'origins' (or use an origin URL as the key)")
        try:
            return DependencyConfig(origins if isinstance(origins, str) else tuple(origins), config)  # type: ignore[arg-type]  # checked there
        except (TypeError, ValueError) as error:
            raise type(error)(f"{where}: {error}") from None

    def _overridden(self, overrides: Dict[str, Any], where: str) -> "ClientConfig":
        """This config (or the named preset) with ``overrides``, as :meth:`from_dict` reads them."""
        from dataclasses import replace

        from .config_sources import overridden

        base = replace(self, dependencies={})
        return overridden(base, overrides, f"{where}.")

    def policy_for(self, origin: str) -> Tuple[str, "ClientConfig"]:
        """The dependency ``origin`` (``scheme://host:port``) belongs to, and the
        config of its layers: its own from :attr:`dependencies`, else this one
        (the dependency is then the origin itself)."""
        route = self._routes.get(origin)
        return route if route is not None else (origin, self)

    @classmethod
    def from_dict(cls, data: Any) -> "ClientConfig":
        """From a nested mapping (``preset`` + overrides); see :mod:`.config_sources`."""
        from .config_sources import from_dict

        return from_dict(data)

    @classmethod
    def from_env(cls, prefix: str = "RESILIENT_REQUESTS_", environ: Any = None) -> "ClientConfig":
        """From ``PREFIX*`` variables (``os.environ`` by default); see :mod:`.config_sources`."""
        from .config_sources import from_env

        return from_env(prefix, environ)

    @classmethod
    def from_file(cls, path: Any) -> "ClientConfig":
        """From a ``.json`` or ``.toml`` file; see :mod:`.config_sources`."""
        from .config_sources import from_file

        return from_file(path)

    def replace(self, **changes: Any) -> "ClientConfig":
        """A copy with ``changes`` applied (and checked)."""
        from dataclasses import replace

        return replace(self, **changes)
