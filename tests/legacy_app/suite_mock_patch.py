"""The legacy app's suite with unittest.mock, as written for plain requests (kept
unchanged): ``patch("requests.get")`` and friends, ``patch.object`` on the app's
session, and one ``patch("shop.requests.get")``. Run by tests/test_legacy_suites.py."""
from unittest import mock

import pytest
import requests
import shop

USER = {"id": 7, "name": "Ada"}


def _answer(status=200, payload=None):
    response = mock.Mock(status_code=status, ok=status < 400)
    response.json.return_value = payload
    if status >= 400:
        response.raise_for_status.side_effect = requests.HTTPError(f"{status}")
    return response


def test_get_user():
    with mock.patch.object(shop.session, "get", return_value=_answer(200, USER)):
        assert shop.get_user(7) == USER


def test_get_user_passes_a_timeout():
    with mock.patch.object(shop.session, "get", return_value=_answer(200, USER)) as get:
        shop.get_user(7)
    get.assert_called_once_with(f"{shop.USERS}/users/7", timeout=5)


def test_find_users_sends_the_query():
    with mock.patch.object(shop.session, "get", return_value=_answer(200, {"users": [USER]})) as get:
        assert shop.find_users("ada") == [USER]
    assert get.call_args.kwargs["params"] == {"name": "ada"}


def test_create_user():
    with mock.patch.object(shop.session, "post", return_value=_answer(201, {"id": 8})) as post:
        assert shop.create_user("Grace") == 8
    assert post.call_args.kwargs["json"] == {"name": "Grace"}


def test_get_user_timeout_propagates():
    with mock.patch.object(shop.session, "get", side_effect=requests.Timeout("slow")):
        with pytest.raises(requests.Timeout):
            shop.get_user(7)


@mock.patch("requests.get")
def test_balance(get):
    get.return_value = _answer(200, {"balance": 1250})
    assert shop.balance("a1") == 1250


@mock.patch("requests.get")
def test_balance_url(get):
    get.return_value = _answer(200, {"balance": 0})
    shop.balance("a1")
    get.assert_called_once_with(f"{shop.PAYMENTS}/accounts/a1/balance", timeout=5)


@mock.patch("requests.post")
def test_charge(post):
    post.return_value = _answer(201, {"charge_id": "c1"})
    assert shop.charge("a1", 500) == "c1"


@mock.patch("requests.post")
def test_charge_declined(post):
    post.return_value = _answer(402)
    assert shop.charge("a1", 500) is None


@mock.patch("requests.get")
def test_payments_up(get):
    get.return_value = _answer(200)
    assert shop.payments_up() is True


@mock.patch("requests.get", side_effect=requests.ConnectionError("refused"))
def test_payments_down(get):
    assert shop.payments_up() is False
    get.assert_called_once()


@mock.patch("shop.requests.get")
def test_balance_patched_where_used(get):
    get.return_value = _answer(200, {"balance": 99})
    assert shop.balance("a1") == 99
