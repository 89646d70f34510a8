"""Imported by the legacy suites' conftest: no connection or name lookup off
loopback. A call that escapes its mock fails (a ConnectionError) instead of
reaching the network."""
import socket

_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def _loopback(host):
    host = str(host or "")
    return host in ("localhost", "::1", "") or host.startswith("127.")


def _checked(real):
    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            raise OSError(f"legacy suite guard: {address!r} is not on loopback")
        return real(self, address)
    return connect


def _getaddrinfo_loopback(host, *args, **kwargs):
    if host is not None and not _loopback(host.decode() if isinstance(host, bytes) else host):
        raise socket.gaierror(f"legacy suite guard: no name lookups off loopback ({host!r})")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _checked(_connect)
socket.socket.connect_ex = _checked(_connect_ex)
socket.getaddrinfo = _getaddrinfo_loopback
