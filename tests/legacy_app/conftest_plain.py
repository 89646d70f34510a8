"""The legacy suites' conftest, as it was: the app on plain requests (plus the
loopback guard of these copies)."""
import guard  # noqa: F401
