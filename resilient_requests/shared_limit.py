"""A dependency's rate limit shared through Redis: one limit for every process.

With ``RateLimitConfig(shared=True)`` and a Redis ``storage`` in the breaker's
config, the permits and the cool-down of a dependency live in two Redis keys,
``{namespace}:ratelimit:{dependency}:{policy}:tat`` and ``...:pause``, so eight
gunicorn workers or eight Celery processes together send at the configured
rate, and a ``Retry-After`` seen by one pauses them all.

The permits follow GCRA (the generic cell rate algorithm, as in ATM networks
and redis-cell): the key holds the *theoretical arrival time* of the next
permit; a caller may go when it is at most ``(burst - 1)`` intervals ahead, and
pushes it one interval further. One Lua script does the check and the push
atomically, on Redis's own clock (``TIME``), so processes on hosts whose clocks
differ agree. A caller that would wait longer than it may takes nothing.

Redis trouble never breaks a call: on any error the limiter uses its local
bucket at ``fallback_share`` of the rate for ``storage_retry`` seconds (logged
once), then tries Redis again. The lone call after a pause is chosen per
process: with the pause shared, each process sends one call first when it ends.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Optional, Tuple

__all__ = ["SharedLimit"]

_LOG = logging.getLogger("resilient_requests.shared_state")

# KEYS: tat, pause. ARGV: interval (ms; 0 = no rate), burst, longest wait (ms).
# Returns {granted 1/0, wait in ms}: granted, sleep that long (to the end of a
# pause and/or until the permit is due); refused, a permit would be due then.
_TAKE = """
local t = redis.call('TIME')
local real = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local now = real
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then now = paused end
local interval = tonumber(ARGV[1])
local wait = now - real
if interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
  if tat < now then tat = now end
  local due = tat - (tonumber(ARGV[2]) - 1) * interval
  if due > now then wait = due - real end
  if wait > tonumber(ARGV[3]) then return {0, tostring(wait)} end
  redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', math.ceil(tat + interval - real) + 1000)
  return {1, tostring(wait)}
end
if wait > tonumber(ARGV[3]) then return {0, tostring(wait)} end
return {1, tostring(wait)}
"""

# KEYS: pause. ARGV: seconds (ms). Pauses until now + that, unless a later pause stands.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local untill = now + tonumber(ARGV[1])
if untill > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], tostring(untill), 'PX', math.ceil(tonumber(ARGV[1])) + 1000)
end
return 1
"""


class SharedLimit:
    """The Redis side of one dependency's limiter, with the switch to local state."""

    def __init__(self, client: Any, key: str, retry_after: float) -> None:
        self._keys = [f"{key}:tat", f"{key}:pause"]
        self._take = client.register_script(_TAKE)
        self._pause = client.register_script(_PAUSE)
        self._retry_after = retry_after
        self._down_until = 0.0

    @property
    def usable(self) -> bool:
        """Whether to ask Redis now (not within ``storage_retry`` of a failure)."""
        return not self._down_until or time.monotonic() >= self._down_until

    def _failed(self, error: Exception) -> None:
        first = not self._down_until
        self._down_until = time.monotonic() + self._retry_after
        if first:
            _LOG.warning("shared rate limit %s unavailable (%s); using this process's share locally",
                         self._keys[0], error, extra={"origin": self._keys[0]})

    def _ok(self) -> None:
        if self._down_until:
            self._down_until = 0.0
            _LOG.warning("shared rate limit %s is back", self._keys[0], extra={"origin": self._keys[0]})

    def take(self, rate: Optional[float], burst: float, wait_limit: float) -> Optional[Tuple[bool, float]]:
        """Ask Redis for a permit: (granted, seconds to sleep or until one is due),
        or ``None`` if Redis failed (the caller uses its local bucket)."""
        interval = 1000.0 / rate if rate else 0.0
        try:
            granted, wait = self._take(keys=self._keys, args=[repr(interval), repr(burst), repr(wait_limit * 1000.0)])
        except Exception as error:  # redis errors, timeouts: never the caller's problem
            self._failed(error)
            return None
        self._ok()
        return bool(int(granted)), max(0.0, float(wait) / 1000.0)

    def pause(self, seconds: float) -> None:
        """Pause every process's calls for ``seconds`` (a later pause that stands is kept)."""
        try:
            self._pause(keys=self._keys[1:], args=[repr(seconds * 1000.0)])
        except Exception as error:
            self._failed(error)
