"""Property tests (hypothesis): config validation, Retry-After parsing, and the
wait generator's handling of a server's Retry-After."""
from __future__ import annotations

import dataclasses
import email.utils
import math
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import pytest
import requests
from hypothesis import example, given, settings
from hypothesis import strategies as st

from resilient_requests import (
    BulkheadConfig,
    CircuitBreakerConfig,
    HedgeConfig,
    RetryConfig,
    ThrottleConfig,
    TimeoutConfig,
)
from resilient_requests.retry import Attempts, Outcome, RetryLoop, retry_after_seconds, waits
from resilient_requests.testing import status

NAN, INF = float("nan"), float("inf")
FLOAT_MAX = sys.float_info.max
SETTINGS = settings(max_examples=200, deadline=None)


# -- (a) config validation ----------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One numeric config field and its documented rule."""

    cls: type
    name: str
    kind: str  # "float": a finite int/float, stored as float; "int": an int, stored as is
    minimum: float
    strict: bool = False  # > minimum rather than >= minimum
    optional: bool = False  # None allowed (and kept)
    others: Any = None  # other fields, so that only this one can be wrong
    maximum: Optional[float] = None  # <= maximum, for shares
    below: Optional[float] = None  # < below

    def __str__(self) -> str:
        return f"{self.cls.__name__}.{self.name}"

    def build(self, value: Any) -> Any:
        return self.cls(**dict(self.others or {}), **{self.name: value})

    def expected(self, value: Any) -> Optional[type]:
        """The exception the documented rule calls for, or None if ``value`` is valid."""
        if value is None and self.optional:
            return None
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                return TypeError
            return ValueError if value < self.minimum else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return TypeError
        if math.isnan(value) or math.isinf(value):
            return ValueError
        try:
            float(value)
        except OverflowError:
            return ValueError
        too_small = value <= self.minimum if self.strict else value < self.minimum
        too_big = (self.maximum is not None and value > self.maximum) or (self.below is not None and value >= self.below)
        return ValueError if too_small or too_big else None


FIELDS = [
    *(Field(TimeoutConfig, name, "float", 0.0, strict=True) for name in ("connect", "read", "write", "pool")),
    Field(TimeoutConfig, "total", "float", 0.0, strict=True, optional=True),
    Field(RetryConfig, "max_attempts", "int", 1),
    # min_wait and max_wait are tested alone: the other one never gets in the way.
    Field(RetryConfig, "min_wait", "float", 0.0, others={"max_wait": FLOAT_MAX}),
    Field(RetryConfig, "max_wait", "float", 0.0, others={"min_wait": 0.0}),
    Field(RetryConfig, "multiplier", "float", 1.0),
    Field(RetryConfig, "budget_ratio", "float", 0.0, optional=True),
    Field(RetryConfig, "budget_floor", "float", 0.0),
    Field(RetryConfig, "budget_window", "float", 0.0, strict=True),
    Field(CircuitBreakerConfig, "failure_threshold", "int", 1),
    Field(CircuitBreakerConfig, "recovery_timeout", "float", 0.0, strict=True),
    Field(CircuitBreakerConfig, "failure_rate_threshold", "float", 0.0, strict=True, maximum=1.0),
    Field(CircuitBreakerConfig, "slow_call_rate_threshold", "float", 0.0, strict=True, maximum=1.0),
    Field(CircuitBreakerConfig, "window_size", "float", 1.0),  # calls, with the default count window
    Field(CircuitBreakerConfig, "minimum_calls", "int", 1),
    Field(CircuitBreakerConfig, "slow_call_duration", "float", 0.0, strict=True, optional=True),
    Field(CircuitBreakerConfig, "storage_timeout", "float", 0.0, strict=True),
    Field(CircuitBreakerConfig, "state_cache_ttl", "float", 0.0),
    Field(CircuitBreakerConfig, "storage_retry", "float", 0.0, strict=True),
    Field(CircuitBreakerConfig, "permitted_calls_in_half_open", "int", 1),
    Field(CircuitBreakerConfig, "trial_timeout", "float", 0.0, strict=True, optional=True),
    Field(CircuitBreakerConfig, "recovery_multiplier", "float", 1.0),
    # Tested with the smallest recovery_timeout, so only its own rule (> 0) applies.
    Field(CircuitBreakerConfig, "max_recovery_timeout", "float", 0.0, strict=True, optional=True,
          others={"recovery_timeout": 5e-324}),
    Field(BulkheadConfig, "max_concurrency", "int", 1),
    Field(BulkheadConfig, "acquisition_timeout", "float", 0.0),
    Field(ThrottleConfig, "k", "float", 1.0),
    Field(ThrottleConfig, "window", "float", 0.0, strict=True),
    Field(HedgeConfig, "delay", "float", 0.0, optional=True),
    Field(HedgeConfig, "percentile", "float", 0.0, strict=True, below=1.0),
    Field(HedgeConfig, "min_samples", "int", 1),
    Field(HedgeConfig, "max_hedges", "int", 1),
]
CLASSES = (TimeoutConfig, RetryConfig, CircuitBreakerConfig, BulkheadConfig, ThrottleConfig, HedgeConfig)

ODD_VALUES = st.sampled_from([
    NAN, INF, -INF, 0, 0.0, -0.0, 1, -1, 1.0, 0.5, 5e-324, FLOAT_MAX, -FLOAT_MAX, 2**63, -(2**63),
    True, False, None, "", "1", "1.5", "nan", b"1", [1], (1.0,),
])
NOT_NUMBERS = st.one_of(st.none(), st.booleans(), st.text(max_size=5), st.binary(max_size=3))
# Ints a float field can take at all; ints beyond float's range: see
# test_float_fields_reject_ints_beyond_float_range.
FLOAT_FIELD_VALUES = st.one_of(
    ODD_VALUES, st.floats(), st.integers(min_value=-(10**300), max_value=10**300),
    st.integers(min_value=-3, max_value=3), NOT_NUMBERS,
)
INT_FIELD_VALUES = st.one_of(
    ODD_VALUES, st.floats(), st.integers(min_value=-(10**400), max_value=10**400),
    st.integers(min_value=-3, max_value=3), NOT_NUMBERS,
)


def _field_and_value(field: Field) -> st.SearchStrategy:
    values = INT_FIELD_VALUES if field.kind == "int" else FLOAT_FIELD_VALUES
    return st.tuples(st.just(field), values)


def test_the_field_table_covers_every_numeric_field():
    """Every int/float field of the config classes has a rule in FIELDS."""
    numeric = {
        f"{cls.__name__}.{f.name}"
        for cls in CLASSES for f in dataclasses.fields(cls)
        if str(f.type).replace("Optional[", "").rstrip("]") in ("int", "float")
    }
    assert numeric == {str(field) for field in FIELDS}


@SETTINGS
@given(case=st.sampled_from(FIELDS).flatmap(_field_and_value))
@example(case=(FIELDS[0], 2**1023))
def test_numeric_fields_accept_what_the_rule_allows_and_name_what_they_reject(case):
    """Each numeric field is stored as its documented type or rejected with TypeError/ValueError naming class, field and value."""
    field, value = case
    expected = field.expected(value)
    if expected is None:
        stored = getattr(field.build(value), field.name)
        if value is None:
            assert stored is None
        elif field.kind == "int":
            assert type(stored) is int and stored == value and stored >= field.minimum
        else:
            assert type(stored) is float and math.isfinite(stored) and stored == float(value)
            assert stored > field.minimum if field.strict else stored >= field.minimum
        return
    with pytest.raises((TypeError, ValueError)) as raised:
        field.build(value)
    assert type(raised.value) is expected, f"{field}={value!r}: {raised.value!r}"
    message = str(raised.value)
    assert str(field) in message
    assert repr(value) in message


@SETTINGS
@given(
    low=st.floats(min_value=0.0, max_value=1e300),
    high=st.floats(min_value=0.0, max_value=1e300),
)
@example(low=0.0, high=5e-324)
@example(low=59.999999, high=60.0)
def test_max_wait_below_min_wait_is_always_rejected(low, high):
    """RetryConfig(max_wait < min_wait) raises ValueError naming RetryConfig.max_wait and its value; equal is fine."""
    if low == high:
        assert RetryConfig(min_wait=high, max_wait=low).max_wait == low
        return
    low, high = min(low, high), max(low, high)
    with pytest.raises(ValueError) as raised:
        RetryConfig(min_wait=high, max_wait=low)
    assert "RetryConfig.max_wait" in str(raised.value)
    assert repr(low) in str(raised.value)


def test_float_fields_reject_ints_beyond_float_range():
    """An int too big for a float is a ValueError naming the field, not an OverflowError."""
    wrong: List[str] = []
    for field in FIELDS:
        if field.kind != "float":
            continue
        for label, value in (("10**400", 10**400), ("-10**400", -(10**400))):
            try:
                field.build(value)
            except (TypeError, ValueError) as exc:
                if str(field) not in str(exc):
                    wrong.append(f"{field}={label}: message {exc}")
            except Exception as exc:  # anything else is the bug
                wrong.append(f"{field}={label}: {type(exc).__name__}: {exc}")
            else:
                wrong.append(f"{field}={label}: accepted")
    assert not wrong, "\n".join(wrong)


# -- (b) Retry-After ------------------------------------------------------------


def _response(code: int, retry_after: Optional[str]) -> requests.Response:
    """A hand-made response: only the status and the headers matter here."""
    response = requests.Response()
    response.status_code = code
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


def _http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


RETRY_AFTER_STATUSES = st.sampled_from([429, 503])
# urllib3 >= 2.x caps a Retry-After at Retry.DEFAULT_RETRY_AFTER_MAX (21600 s = 6 h):
# the properties stay below it; test_retry_after_beyond_six_hours_is_not_cut_short
# covers what lies beyond.
URLLIB3_CAP = 21600
PADDING = st.sampled_from(["", " ", "  ", "\t"])


@SETTINGS
@given(code=RETRY_AFTER_STATUSES, seconds=st.integers(min_value=0, max_value=URLLIB3_CAP),
       left=PADDING, right=PADDING)
@example(code=503, seconds=0, left="", right="")
@example(code=429, seconds=URLLIB3_CAP, left="", right="")
def test_integer_retry_after_is_that_many_seconds(code, seconds, left, right):
    """A 429/503 with Retry-After: <n> (optionally padded) gives n seconds as a float."""
    got = retry_after_seconds(_response(code, f"{left}{seconds}{right}"))
    assert type(got) is float
    assert got == float(seconds)


@SETTINGS
@given(code=RETRY_AFTER_STATUSES, ahead=st.integers(min_value=3, max_value=URLLIB3_CAP - 10))
def test_http_date_in_the_future_is_the_seconds_until_then(code, ahead):
    """A future HTTP-date gives roughly the seconds until then (the date has 1 s resolution)."""
    target = time.time() + ahead
    got = retry_after_seconds(_response(code, _http_date(target)))
    now = time.time()
    assert got is not None and math.isfinite(got)
    assert target - now - 2.0 <= got <= target - now + 1.0


@SETTINGS
@given(code=RETRY_AFTER_STATUSES, ago=st.integers(min_value=1, max_value=10**9))
def test_http_date_in_the_past_is_zero(code, ago):
    """A past HTTP-date means no wait: 0.0."""
    assert retry_after_seconds(_response(code, _http_date(time.time() - ago))) == 0.0


NO_DIGITS = st.text(alphabet=st.characters(exclude_categories=("Nd", "Cs")), max_size=30)
NEGATIVE = st.one_of(
    st.integers(max_value=-1).map(str),
    st.floats(max_value=-1e-9, allow_nan=False).map(repr),
    st.floats(min_value=0.0, allow_nan=False, allow_infinity=True).map(repr),  # "1.5", "inf"
)


@SETTINGS
@given(code=RETRY_AFTER_STATUSES, value=st.one_of(NO_DIGITS, NEGATIVE))
@example(code=503, value="")
@example(code=429, value="soon")
@example(code=503, value="-5")
@example(code=503, value="1e9")
@example(code=503, value="nan")
@example(code=503, value="Wed, 32 Foo 2015 07:28:00 GMT")
def test_garbage_negative_or_empty_retry_after_is_ignored(code, value):
    """Garbage, negative, fractional or empty values give None or 0.0, never an exception."""
    assert retry_after_seconds(_response(code, value)) in (None, 0.0)


@SETTINGS
@given(code=RETRY_AFTER_STATUSES, value=st.text(max_size=40))
def test_any_retry_after_text_is_none_or_a_finite_non_negative_float(code, value):
    """Whatever the header says, the result is None or a finite float >= 0 (no exception)."""
    got = retry_after_seconds(_response(code, value))
    assert got is None or (type(got) is float and math.isfinite(got) and got >= 0.0)


# Values beyond 4300 digits: int() refuses them (sys.get_int_max_str_digits), so
# they are ignored (None) like garbage; the properties stay below that.
ENORMOUS = st.one_of(
    st.integers(min_value=10**19, max_value=10**400),
    st.integers(min_value=19, max_value=400).map(lambda digits: 10**digits - 1),
).map(str)


@SETTINGS
@given(code=RETRY_AFTER_STATUSES, value=ENORMOUS)
@example(code=503, value="9" * 400)
@example(code=503, value=str(2**1024))  # beyond float's range
def test_enormous_retry_after_is_a_finite_float(code, value):
    """An enormous Retry-After still gives a finite, non-negative float."""
    got = retry_after_seconds(_response(code, value))
    assert type(got) is float and math.isfinite(got) and got >= 0.0


@SETTINGS
@given(
    code=st.one_of(st.sampled_from([200, 500, 502]), st.integers(min_value=100, max_value=599)),
    value=st.one_of(st.none(), st.integers(min_value=0, max_value=10**6).map(str), st.text(max_size=10)),
)
def test_other_statuses_have_no_retry_after(code, value):
    """Only 429 and 503 have a Retry-After; every other status gives None."""
    if code in (429, 503):
        code = 500
    assert retry_after_seconds(_response(code, value)) is None


@pytest.mark.parametrize("code, header, expected", [
    (503, "7", 7.0),
    (429, " 12 ", 12.0),
    (503, "-3", None),
    (429, "soon", None),
    (200, "7", None),
    (500, "7", None),
])
def test_retry_after_from_a_real_response(fault_server, code, header, expected):
    """Responses read off the wire from the fault server parse the same way."""
    fault_server.route("/r", status(code, retry_after=header))
    with requests.Session() as plain:
        response = plain.get(fault_server.url("/r"), timeout=5)
    assert response.status_code == code
    assert retry_after_seconds(response) == expected


def test_retry_after_beyond_six_hours_is_not_cut_short():
    """A Retry-After above 21600 s keeps its value, so max_wait (not urllib3's 6 h cap) bounds the wait."""
    day = 86400
    assert retry_after_seconds(_response(503, str(day))) == float(day)
    from_date = retry_after_seconds(_response(429, _http_date(time.time() + day)))
    assert from_date is not None and from_date > day - 5
    config = RetryConfig(min_wait=1.0, max_wait=2.0 * day)
    gen = waits(config.min_wait, config.max_wait, config.multiplier, config.jitter)
    gen.send(None)
    assert gen.send(Outcome(retry_after=retry_after_seconds(_response(503, str(day))))) == float(day)


# -- (b) waits: a Retry-After replaces the computed wait, capped at max_wait --------

WAIT_CONFIGS = st.builds(
    dict,
    min_wait=st.floats(min_value=0.0, max_value=100.0),
    spread=st.floats(min_value=0.0, max_value=1000.0),
    multiplier=st.floats(min_value=1.0, max_value=10.0),
    full_jitter=st.booleans(),
)


def _waits(config: Dict[str, Any]):  # type: ignore[no-untyped-def]
    """A primed generator, as backoff drives it, and its max_wait."""
    max_wait = config["min_wait"] + config["spread"]
    gen = waits(config["min_wait"], max_wait, config["multiplier"], config["full_jitter"])
    assert gen.send(None) is None
    return gen, max_wait


@SETTINGS
@given(config=WAIT_CONFIGS, excess=st.one_of(
    st.just(INF), st.just(FLOAT_MAX), st.floats(min_value=0.0, allow_nan=False, allow_infinity=False),
), sends=st.integers(min_value=1, max_value=5))
def test_huge_retry_after_waits_exactly_max_wait(config, excess, sends):
    """A Retry-After at or above max_wait (even inf) makes every wait exactly max_wait, never jittered."""
    gen, max_wait = _waits(config)
    for _ in range(sends):
        assert gen.send(Outcome(retry_after=max_wait + excess)) == max_wait


@SETTINGS
@given(config=WAIT_CONFIGS, fraction=st.floats(min_value=0.0, max_value=1.0), sends=st.integers(1, 5))
def test_retry_after_below_max_wait_is_honoured_as_sent(config, fraction, sends):
    """A Retry-After below max_wait is the wait, exactly, even with full jitter."""
    gen, max_wait = _waits(config)
    retry_after = max_wait * fraction
    for _ in range(sends):
        assert gen.send(Outcome(retry_after=retry_after)) == retry_after


@SETTINGS
@given(config=WAIT_CONFIGS, value=ENORMOUS)
def test_enormous_header_through_the_generator_waits_max_wait(config, value):
    """An enormous Retry-After header, parsed and fed to the generator, waits exactly max_wait."""
    gen, max_wait = _waits(config)
    parsed = retry_after_seconds(_response(503, value))
    assert gen.send(Outcome(retry_after=parsed)) == max_wait


VALID_RETRY_CONFIGS = st.builds(
    RetryConfig,
    min_wait=st.floats(min_value=0.0, max_value=10.0),
    max_wait=st.floats(min_value=10.0, max_value=1e6),
    multiplier=st.floats(min_value=1.0, max_value=1e300),
    jitter=st.booleans(),
)


@settings(max_examples=100, deadline=None)
@given(config=VALID_RETRY_CONFIGS, retry_after=st.one_of(st.none(), st.just(5.0)))
@example(config=RetryConfig(min_wait=0.0, max_wait=60.0, multiplier=2.0, jitter=False), retry_after=None)
@example(config=RetryConfig(min_wait=0.001, max_wait=60.0, multiplier=1e300, jitter=False), retry_after=None)
def test_waits_stay_within_max_wait_for_any_valid_config(config, retry_after):
    """For every valid RetryConfig the first 1100 waits are finite and within [0, max_wait] (no OverflowError)."""
    gen = waits(config.min_wait, config.max_wait, config.multiplier, config.jitter)
    gen.send(None)
    for _ in range(1100):
        wait = gen.send(Outcome(retry_after=retry_after))
        assert wait is not None and 0.0 <= wait <= config.max_wait


class _AlwaysRetry(Attempts):
    """Attempts that always ask for another try (no I/O)."""

    def __init__(self) -> None:
        self.count = 0

    def attempt(self) -> Outcome:
        self.count += 1
        return Outcome(retry=True)

    def before_wait(self, tries: int, wait: float, outcome: Outcome) -> None:
        pass


def test_retry_loop_with_zero_min_wait_and_large_multiplier_ends_normally():
    """A valid config (min_wait=0, multiplier=1e300) runs all its attempts instead of raising OverflowError."""
    config = RetryConfig(max_attempts=4, min_wait=0.0, max_wait=0.001, multiplier=1e300, jitter=False,
                         budget_ratio=None)
    attempts = _AlwaysRetry()
    outcome = RetryLoop(config).run(attempts)
    assert attempts.count == 4
    assert outcome.retry is True
