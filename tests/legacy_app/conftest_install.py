"""No import changed: ``resilient_requests.install()`` before the app is imported
(its module-level session is then resilient, and ``requests.get`` goes through
the shared layers)."""
import guard  # noqa: F401

import resilient_requests

resilient_requests.install()

import shop  # noqa: E402, F401


def pytest_unconfigure(config):
    resilient_requests.uninstall()
