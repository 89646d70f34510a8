"""resilient_requests: requests with timeouts, retries, per-host circuit breakers
and a bulkhead, for threaded code that will never move to asyncio.

``import resilient_requests as requests`` is a whole migration: the module-level
functions, ``Session`` and the names old scripts take from ``requests`` resolve
here too.
"""
from __future__ import annotations

import logging

import requests as _requests
from requests import (  # noqa: F401  (names old scripts take from requests)
    JSONDecodeError,
    PreparedRequest,
    Request,
    Response,
    adapters,
    auth,
    codes,
    cookies,
    hooks,
    models,
    status_codes,
    structures,
    utils,
)
from requests.exceptions import (  # noqa: F401
    ConnectTimeout,
    FileModeWarning,
    HTTPError,
    ReadTimeout,
    RequestException,
    Timeout,
    TooManyRedirects,
    URLRequired,
)

from . import exceptions
from .api import (
    add_listener,
    configure,
    delete,
    get,
    head,
    options,
    patch,
    post,
    put,
    registry,
    remove_listener,
    request,
    reset,
    session,
)
from .breaker import CircuitState
from .compartments import Compartment, Registry
from .config import (
    BulkheadConfig,
    CircuitBreakerConfig,
    ClientConfig,
    DependencyConfig,
    HedgeConfig,
    LoggingConfig,
    RateLimitConfig,
    RetryConfig,
    ThrottleConfig,
    TimeoutConfig,
)
from .events import (
    AttemptFailed,
    AttemptFinished,
    AttemptStarted,
    BreakerStateChanged,
    BulkheadRejected,
    CallFinished,
    CallShortCircuited,
    Listener,
    RetryScheduled,
)
from .exceptions import (
    APIError,
    AuthenticationError,
    CircuitOpenError,
    ClientError,
    ConnectionError,
    DeadlineExceededError,
    NotFoundError,
    PoolTimeoutError,
    RateLimitedError,
    ServerError,
    ThrottledError,
    TimeoutError,
)
from .installation import install, uninstall
from .presets import (
    get_batch_processing_config,
    get_default_config,
    get_fast_microservice_config,
    get_high_latency_config,
    get_web_config,
    preset,
)
from .session import ResilientMixin, ResilientSession, create_resilient_client

__version__ = "0.1.0"

#: ``requests.Session``'s stand-in: ``import resilient_requests as requests; requests.Session()``.
Session = ResilientSession

logging.getLogger("resilient_requests").addHandler(logging.NullHandler())

__all__ = [
    "APIError", "AuthenticationError", "BulkheadConfig", "CircuitBreakerConfig", "CircuitOpenError",
    "CircuitState", "ClientConfig", "ClientError", "ConnectionError", "DeadlineExceededError", "HedgeConfig", "LoggingConfig",
    "NotFoundError",
    "PoolTimeoutError", "ResilientSession", "RetryConfig", "ServerError", "Session", "ThrottleConfig", "ThrottledError", "TimeoutConfig",
    "TimeoutError", "configure", "create_resilient_client", "delete", "exceptions", "get",
    "get_batch_processing_config", "get_default_config", "get_fast_microservice_config", "get_high_latency_config", "head",
    "options", "patch", "post", "preset", "put", "request", "session",
    "Listener", "RetryScheduled", "AttemptFailed", "AttemptStarted", "AttemptFinished", "BreakerStateChanged",
    "CallShortCircuited",
    "BulkheadRejected", "CallFinished",
    "Compartment", "DependencyConfig", "Registry", "registry", "reset", "RateLimitConfig", "RateLimitedError",
    "get_web_config", "ResilientMixin", "install", "uninstall", "add_listener", "remove_listener",
    "codes", "Request", "Response", "PreparedRequest", "RequestException", "HTTPError", "Timeout",
    "ConnectTimeout", "ReadTimeout", "TooManyRedirects", "URLRequired", "JSONDecodeError",
]
del _requests
