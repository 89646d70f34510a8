"""The legacy app's suite with responses, as written for plain requests (kept unchanged).

tests/test_legacy_suites.py copies it next to shop.py as test_shop.py and runs it
with plain requests, after the swap and with install(). The tests whose names end
in ``_once`` or ``_then_recovers`` count the calls of a failing GET: retries change
those counts by design.
"""
import pytest
import requests
import responses
import shop
from responses import matchers

USER = {"id": 7, "name": "Ada"}


@responses.activate
def test_get_user():
    responses.add(responses.GET, f"{shop.USERS}/users/7", json=USER)
    assert shop.get_user(7) == USER


@responses.activate
def test_get_user_sends_the_session_headers():
    responses.add(responses.GET, f"{shop.USERS}/users/7", json=USER)
    shop.get_user(7)
    sent = responses.calls[0].request.headers
    assert sent["Accept"] == "application/json" and sent["User-Agent"] == "shop/1.0"


@responses.activate
def test_find_users_sends_the_query():
    responses.add(responses.GET, f"{shop.USERS}/users", json={"users": [USER]},
                  match=[matchers.query_param_matcher({"name": "ada"})])
    assert shop.find_users("ada") == [USER]


@responses.activate
def test_create_user_posts_json():
    responses.add(responses.POST, f"{shop.USERS}/users", json={"id": 8}, status=201,
                  match=[matchers.json_params_matcher({"name": "Grace"})])
    assert shop.create_user("Grace") == 8


@responses.activate
def test_get_user_not_found():
    responses.add(responses.GET, f"{shop.USERS}/users/9", status=404)
    with pytest.raises(requests.HTTPError):
        shop.get_user(9)


@responses.activate
def test_get_user_server_error_raises():
    responses.add(responses.GET, f"{shop.USERS}/users/7", status=500)
    with pytest.raises(requests.HTTPError):
        shop.get_user(7)


@responses.activate
def test_get_user_server_error_is_asked_once():
    responses.add(responses.GET, f"{shop.USERS}/users/7", status=500)
    with pytest.raises(requests.HTTPError):
        shop.get_user(7)
    assert len(responses.calls) == 1


@responses.activate
def test_balance():
    responses.add(responses.GET, f"{shop.PAYMENTS}/accounts/a1/balance", json={"balance": 1250})
    assert shop.balance("a1") == 1250


@responses.activate
def test_charge_declined():
    responses.add(responses.POST, f"{shop.PAYMENTS}/charges", status=402)
    assert shop.charge("a1", 500) is None


@responses.activate
def test_charge_server_error_is_sent_once():
    responses.add(responses.POST, f"{shop.PAYMENTS}/charges", status=503)
    with pytest.raises(requests.HTTPError):
        shop.charge("a1", 500)
    assert len(responses.calls) == 1


@responses.activate
def test_payments_down_when_unreachable():
    responses.add(responses.GET, f"{shop.PAYMENTS}/health",
                  body=requests.exceptions.ConnectionError("connection refused"))
    assert shop.payments_up() is False


@responses.activate
def test_payments_health_is_checked_once():
    responses.add(responses.GET, f"{shop.PAYMENTS}/health",
                  body=requests.exceptions.ConnectionError("connection refused"))
    assert shop.payments_up() is False
    assert len(responses.calls) == 1


@responses.activate
def test_exactly_the_headers_the_app_sets():
    expected = dict(requests.utils.default_headers(), Accept="application/json")
    expected["User-Agent"] = "shop/1.0"
    responses.add(responses.GET, f"{shop.USERS}/users/7", json=USER,
                  match=[matchers.header_matcher(expected, strict_match=True)])
    assert shop.get_user(7) == USER


@responses.activate
def test_balance_fails_then_recovers():
    responses.add(responses.GET, f"{shop.PAYMENTS}/accounts/a1/balance", status=503)
    responses.add(responses.GET, f"{shop.PAYMENTS}/accounts/a1/balance", json={"balance": 10})
    with pytest.raises(requests.HTTPError):
        shop.balance("a1")
    assert shop.balance("a1") == 10
