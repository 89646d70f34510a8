"""Gunicorn settings for a threaded app that calls upstreams through a ResilientSession.

For ``examples/flask_app.py`` or ``examples/django_app.py``::

    gunicorn -c examples/gunicorn.conf.py --chdir examples 'flask_app:create_app()'
    gunicorn -c examples/gunicorn.conf.py --chdir examples 'django_app:application()'

The numbers below are tied together; change one, check the others:

* each worker process is one Python process with its own ResilientSession (bulkhead and
  connection pools are per process; so are the breakers, unless
  ``CircuitBreakerConfig.storage`` names a Redis they share -- docs/operations/redis.md);
* ``threads`` is how many requests a worker handles at once; the session's bulkhead
  (``max_concurrency``) is how many of them may wait on the upstream at once;
* the client's deadline (``TimeoutConfig.total``) bounds every upstream call, so it
  bounds how long a thread can be held by a slow upstream.

Settings are read from the environment where a deployment would set them
(``WEB_CONCURRENCY``, ``WEB_THREADS``, ``UPSTREAM_DEADLINE``, ``PORT``). Gunicorn ignores
the names here that are not its settings (``upstream_deadline``, ``bulkhead_slots``,
``bulkhead_wait``): they only feed ``raw_env`` and the timeouts.
"""
from __future__ import annotations

import os

# -- workers and threads ---------------------------------------------------------

#: Threads, not processes, serve concurrent requests: the session's breakers and
#: bulkhead see every request of the worker, and the pools are reused.
worker_class = "gthread"

#: A few processes (one per core is plenty for I/O-bound work); each has its own session.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))

#: Requests handled at once per worker.
threads = int(os.environ.get("WEB_THREADS", "16"))

# -- the client: deadline and bulkhead, in step with the threads ----------------

#: Seconds: the whole upstream call (every attempt, every backoff wait, the body).
#: A thread is never held longer than this by one upstream call.
upstream_deadline = float(os.environ.get("UPSTREAM_DEADLINE", "10"))

#: The bulkhead: at most this many threads of a worker wait on the upstream at once.
#: Fewer than ``threads`` on purpose: when the upstream is slow, the other threads
#: stay free for requests that do not need it (health checks, cached pages, static
#: answers) instead of all piling up on a dead dependency. A request that finds the
#: bulkhead full waits ``acquisition_timeout`` for a slot, then gets a fast 503 with
#: Retry-After (from contrib.flask / contrib.django). The upstream sees at most
#: ``workers * bulkhead_slots`` requests in flight from this service.
bulkhead_slots = max(1, threads * 3 // 4)

#: Wait for a bulkhead slot briefly: a queue longer than that only adds latency.
bulkhead_wait = 0.5

#: Set in every worker's environment, where ``ClientConfig.from_env()`` and the
#: module-level API read them; ``flask_app.create_app()`` copies them into
#: ``app.config`` for ``ResilientRequests``. (Django reads its clients from
#: ``settings.RESILIENT_REQUESTS``: give them the same ``timeout.total`` and ``bulkhead``.)
raw_env = [
    f"RESILIENT_REQUESTS_TIMEOUT__TOTAL={upstream_deadline:g}",
    f"RESILIENT_REQUESTS_BULKHEAD__MAX_CONCURRENCY={bulkhead_slots}",
    f"RESILIENT_REQUESTS_BULKHEAD__ACQUISITION_TIMEOUT={bulkhead_wait:g}",
]

# -- gunicorn's timeouts, aligned with the deadline ------------------------------

#: A gthread worker's heartbeat comes from its main loop, so this does not cut a slow
#: request short (the client's deadline does that); it restarts a worker whose main
#: loop is stuck. Keep it well above the deadline so a busy worker is never killed
#: in the middle of calls that would have ended by themselves.
timeout = int(upstream_deadline * 3)

#: On a reload or shutdown, let requests in flight finish: each is bounded by the
#: deadline (plus the app's own work), so a little more than the deadline is enough.
graceful_timeout = int(upstream_deadline + 5)

#: Keep-alive with the load balancer in front; shorter than its idle timeout.
keepalive = 5

# -- process model -----------------------------------------------------------------

#: Build the app (and its ResilientSession) in each worker after the fork, not in the
#: master: connection pools and the deadline watchdog thread must not cross a fork.
preload_app = False

#: Recycle workers now and then (with jitter, so they do not restart together).
max_requests = 10000
max_requests_jitter = 1000

bind = f"127.0.0.1:{os.environ.get('PORT', '8000')}"
accesslog = "-"
