"""The swap, made as a user makes it: shop.py's ``import requests`` becomes
``import resilient_requests as requests``. Here a sys.modules entry stands in
for that one-line edit while shop is imported, so shop.py and the suites stay
as they are; the suites' own ``import requests`` is still requests."""
import sys

import guard  # noqa: F401
import requests

import resilient_requests

sys.modules["requests"] = resilient_requests
try:
    import shop  # noqa: F401
finally:
    sys.modules["requests"] = requests
