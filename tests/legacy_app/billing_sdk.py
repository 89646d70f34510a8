"""A stand-in for a third-party SDK: it knows nothing of resilient_requests. Its
client makes a ``requests.Session()`` when built, and it subclasses
``requests.Session`` when imported (as many SDKs do). tests/test_install.py
loads it before and after ``resilient_requests.install()``."""
import requests


class SDKSession(requests.Session):
    """The SDK's own session class, defined when the SDK is imported."""

    def __init__(self):
        super().__init__()
        self.headers["User-Agent"] = "billing-sdk/2.1"


class BillingClient:
    def __init__(self, base_url, own_session=False):
        self.base_url = base_url
        self.http = SDKSession() if own_session else requests.Session()

    def invoice(self, number):
        response = self.http.get(f"{self.base_url}/invoices/{number}", timeout=5)
        response.raise_for_status()
        return response.json()
