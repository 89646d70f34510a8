"""requests' ``Session.prepare_request``, with its merges done without its slow path.

requests (2.32 and later) merges a request's settings into the session's with
``merge_setting``, which turns both mappings into lists through
``to_key_val_list``; that asks ``isinstance(value, SupportsItems)`` — a
runtime-checkable ``typing.Protocol``, whose ``isinstance`` walks the
protocol's attributes on every call: 5-10 µs each on CPython 3.11, and a plain
GET makes eight of them (headers, params, proxies, and the empty params'
encoding). That is a sixth of a keep-alive GET on loopback.

The functions here give the same results — the same merged headers (a new
``CaseInsensitiveDict``, the session's first, keys set to ``None`` dropped),
params, auth, cookies and hooks — taking a short cut only where the result is
plain to see: both sides exact ``dict``/``OrderedDict``/``CaseInsensitiveDict``
instances, or nothing to merge. Anything else goes to requests' own
``merge_setting``. requests' own test suite runs against this (tests/test_requests_suite.py).
"""
from __future__ import annotations

from collections import OrderedDict
from http.cookiejar import CookieJar
from typing import Any, cast

import requests
from requests.cookies import RequestsCookieJar, cookiejar_from_dict, merge_cookies
from requests.hooks import default_hooks
from requests.sessions import merge_hooks, merge_setting
from requests.structures import CaseInsensitiveDict

from .environment import netrc_auth

__all__ = ["merge", "prepare"]

_PLAIN = (dict, OrderedDict, CaseInsensitiveDict)


def merge(request_setting: Any, session_setting: Any, dict_class: type = OrderedDict) -> Any:
    """``requests.sessions.merge_setting``, without its ``Protocol`` checks for plain mappings."""
    if session_setting is None:
        return request_setting
    if request_setting is None:
        return session_setting
    if type(request_setting) not in _PLAIN or type(session_setting) not in _PLAIN:
        return merge_setting(request_setting, session_setting, dict_class=dict_class)
    merged = dict_class(session_setting.items())
    merged.update(request_setting.items())
    for key in [key for key, value in merged.items() if value is None]:
        del merged[key]
    return merged


def _headers(request_headers: Any, session_headers: Any) -> Any:
    """The merged headers; the session's own mapping when the request adds none and
    none of the session's is ``None`` (``prepare_headers`` copies it into the request's own)."""
    if type(request_headers) in _PLAIN and not request_headers and type(session_headers) in _PLAIN \
            and None not in session_headers.values():
        return session_headers
    return merge(request_headers, session_headers, dict_class=CaseInsensitiveDict)


def _params(request_params: Any, session_params: Any) -> Any:
    """The merged params; ``None`` when both sides are empty plain mappings
    (requests would encode an empty mapping to nothing, asking the protocol twice)."""
    if (request_params is None or (type(request_params) in _PLAIN and not request_params)) and \
            (session_params is None or (type(session_params) in _PLAIN and not session_params)):
        return None
    return merge(request_params, session_params)


def _hooks(request_hooks: Any, session_hooks: Any) -> Any:
    """``merge_hooks``; ``None`` when no hook is set at all (requests registers each empty list)."""
    if type(request_hooks) is dict and type(session_hooks) is dict and request_hooks == session_hooks == _NO_HOOKS:
        return None
    return merge_hooks(request_hooks, session_hooks)  # type: ignore[no-untyped-call, unused-ignore]


_NO_HOOKS = default_hooks()


def prepare(session: requests.Session, request: requests.Request) -> requests.PreparedRequest:
    """What ``session.prepare_request(request)`` returns, step for step as requests
    2.x does it (cookies, netrc auth with ``trust_env``, the merges, ``prepare``)."""
    # The ignores: types-requests (which mypy prefers to requests' inline types) leaves these untyped.
    cookies = request.cookies or {}
    if not isinstance(cookies, CookieJar):
        cookies = cookiejar_from_dict(cookies)  # type: ignore[no-untyped-call, unused-ignore]
    merged_cookies = merge_cookies(  # type: ignore[no-untyped-call, unused-ignore]
        merge_cookies(RequestsCookieJar(), session.cookies), cookies)  # type: ignore[no-untyped-call, unused-ignore]
    auth = request.auth
    if session.trust_env and not auth and not session.auth:
        auth = netrc_auth(cast(str, request.url))  # requests' lookup, its paths kept (.environment)
    prepared = requests.PreparedRequest()
    prepared.prepare(
        method=request.method.upper(),  # type: ignore[union-attr, unused-ignore]  # as requests: None fails here
        url=request.url,
        files=request.files,
        data=request.data,
        json=request.json,
        headers=_headers(request.headers, session.headers),
        params=_params(request.params, session.params),
        auth=merge(auth, session.auth),
        cookies=merged_cookies,
        hooks=_hooks(request.hooks, session.hooks),
    )
    return prepared

