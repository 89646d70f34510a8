"""A small legacy app, as found: ``import requests``, a module-level session for
one service and ``requests.get`` / ``requests.post`` for another.

tests/test_legacy_suites.py runs three unchanged suites against it (one per
mocking library: suite_responses.py, suite_requests_mock.py, suite_mock_patch.py)
with plain requests, after the swap to ``resilient_requests`` and with
``resilient_requests.install()``. Nothing here is reached over the network: the
suites mock every call, and the suites' conftest refuses any connection off loopback.
"""
import requests

USERS = "https://users.example.com"
PAYMENTS = "https://payments.example.com"

session = requests.Session()
session.headers.update({"Accept": "application/json", "User-Agent": "shop/1.0"})


def get_user(user_id):
    response = session.get(f"{USERS}/users/{user_id}", timeout=5)
    response.raise_for_status()
    return response.json()


def find_users(name):
    response = session.get(f"{USERS}/users", params={"name": name}, timeout=5)
    response.raise_for_status()
    return response.json()["users"]


def create_user(name):
    response = session.post(f"{USERS}/users", json={"name": name}, timeout=5)
    response.raise_for_status()
    return response.json()["id"]


def balance(account):
    response = requests.get(f"{PAYMENTS}/accounts/{account}/balance", timeout=5)
    response.raise_for_status()
    return response.json()["balance"]


def charge(account, cents):
    response = requests.post(f"{PAYMENTS}/charges", json={"account": account, "cents": cents}, timeout=5)
    if response.status_code == 402:
        return None
    response.raise_for_status()
    return response.json()["charge_id"]


def payments_up():
    try:
        return requests.get(f"{PAYMENTS}/health", timeout=2).ok
    except requests.RequestException:
        return False
