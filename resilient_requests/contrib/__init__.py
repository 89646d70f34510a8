"""Optional integrations, each behind its own extra; none is imported here.

* :mod:`resilient_requests.contrib.flask` — ``pip install 'resilient_requests[flask]'``:
  the ``ResilientRequests`` Flask extension (one session per app, built from
  ``app.config``; open breakers and full bulkheads become ``503`` + ``Retry-After``).
* :mod:`resilient_requests.contrib.django` — ``pip install 'resilient_requests[django]'``:
  named sessions from ``settings.RESILIENT_REQUESTS``, the same ``503`` mapping as a
  middleware, and a health view.
* :mod:`resilient_requests.contrib.prometheus` — ``pip install 'resilient_requests[prometheus]'``:
  a listener that exports calls, retries, failures and breaker states as Prometheus metrics.

Importing :mod:`resilient_requests` (or this package) never imports Flask, Django
or prometheus-client; importing one of the modules above without its framework
raises an ``ImportError`` that names the extra to install.
"""
