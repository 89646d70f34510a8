"""The legacy app's suite with requests-mock (its pytest fixture and ``Mocker``), as
written for plain requests (kept unchanged). Run by tests/test_legacy_suites.py."""
import pytest
import requests
import requests_mock as rm
import shop

USER = {"id": 7, "name": "Ada"}


def test_get_user(requests_mock):
    requests_mock.get(f"{shop.USERS}/users/7", json=USER)
    assert shop.get_user(7) == USER


def test_get_user_sends_the_session_headers(requests_mock):
    requests_mock.get(f"{shop.USERS}/users/7", json=USER)
    shop.get_user(7)
    assert requests_mock.last_request.headers["Accept"] == "application/json"
    assert requests_mock.last_request.headers["User-Agent"] == "shop/1.0"


def test_find_users_sends_the_query(requests_mock):
    requests_mock.get(f"{shop.USERS}/users", json={"users": [USER]})
    assert shop.find_users("ada") == [USER]
    assert requests_mock.last_request.qs == {"name": ["ada"]}


def test_create_user_posts_json(requests_mock):
    requests_mock.post(f"{shop.USERS}/users", json={"id": 8}, status_code=201)
    assert shop.create_user("Grace") == 8
    assert requests_mock.last_request.json() == {"name": "Grace"}


def test_get_user_not_found(requests_mock):
    requests_mock.get(f"{shop.USERS}/users/9", status_code=404)
    with pytest.raises(requests.HTTPError):
        shop.get_user(9)


def test_get_user_server_error_raises(requests_mock):
    requests_mock.get(f"{shop.USERS}/users/7", status_code=500)
    with pytest.raises(requests.HTTPError):
        shop.get_user(7)


def test_get_user_server_error_is_asked_once(requests_mock):
    requests_mock.get(f"{shop.USERS}/users/7", status_code=500)
    with pytest.raises(requests.HTTPError):
        shop.get_user(7)
    assert requests_mock.call_count == 1


def test_balance():
    with rm.Mocker() as mocker:
        mocker.get(f"{shop.PAYMENTS}/accounts/a1/balance", json={"balance": 1250})
        assert shop.balance("a1") == 1250


def test_charge_declined():
    with rm.Mocker() as mocker:
        mocker.post(f"{shop.PAYMENTS}/charges", status_code=402)
        assert shop.charge("a1", 500) is None


def test_charge_server_error_is_sent_once(requests_mock):
    requests_mock.post(f"{shop.PAYMENTS}/charges", status_code=503)
    with pytest.raises(requests.HTTPError):
        shop.charge("a1", 500)
    assert requests_mock.call_count == 1


def test_payments_down_when_unreachable(requests_mock):
    requests_mock.get(f"{shop.PAYMENTS}/health", exc=requests.exceptions.ConnectTimeout)
    assert shop.payments_up() is False


def test_payments_health_is_checked_once(requests_mock):
    requests_mock.get(f"{shop.PAYMENTS}/health", exc=requests.exceptions.ConnectTimeout)
    assert shop.payments_up() is False
    assert requests_mock.call_count == 1


def test_only_the_headers_the_app_sets(requests_mock):
    requests_mock.get(f"{shop.USERS}/users/7", json=USER)
    shop.get_user(7)
    assert set(requests_mock.last_request.headers) == {"User-Agent", "Accept-Encoding", "Accept", "Connection"}


# Last: with plain requests, a Mocker(session=...) leaves the session's own send() on
# the instance, which hides the class-level mock of a later test (requests-mock's behaviour).
def test_get_user_with_the_session_mocked():
    with rm.Mocker(session=shop.session) as mocker:
        mocker.get(f"{shop.USERS}/users/7", json=USER)
        assert shop.get_user(7) == USER
    assert mocker.call_count == 1
