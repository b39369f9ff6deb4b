"""ZeroMQ endpoint addresses: whether one stays on this machine.

The server refuses to bind a non-loopback address without encryption, and the add-on refuses
to reach one while Blender's online access is off; both ask is_loopback(). Stdlib only.
"""
from __future__ import annotations

import ipaddress

# Transports that never leave the machine (a Unix socket, the same process).
LOCAL_TRANSPORTS = ("ipc", "inproc")


def is_loopback(address: str) -> bool:
    """True when a ZeroMQ endpoint cannot reach another machine: ipc:// and inproc://, and
    tcp:// to localhost or a loopback IP (127.0.0.0/8, ::1, ::ffff:127.x.x.x), brackets or
    not, any port (a "*" port included). Anything else is False: the wildcard "*", 0.0.0.0,
    an interface name, another host, another transport (pgm, ws, ...) or a malformed address.
    For `tcp://SOURCE;HOST:PORT` (connect from SOURCE) only HOST counts."""
    transport, separator, rest = address.strip().partition("://")
    if not separator:
        return False
    if transport in LOCAL_TRANSPORTS:
        return True
    if transport != "tcp":
        return False
    host = _tcp_host(rest.rpartition(";")[2])
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:  # "*", an interface name or a host name: assume reachable from outside
        return False
    # An IPv4-mapped IPv6 address is loopback when its IPv4 address is (Python < 3.13 says no).
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def _tcp_host(endpoint: str) -> str | None:
    """The host of "HOST:PORT", "[IPV6]:PORT", "IPV6:PORT" or a bare host; None if malformed."""
    if endpoint.startswith("["):
        closing = endpoint.find("]")
        after = endpoint[closing + 1:]
        if closing < 0 or (after and not after.startswith(":")):
            return None
        return endpoint[1:closing]
    # libzmq splits the port off at the last colon, so an unbracketed IPv6 address works too.
    host = endpoint.rpartition(":")[0] if ":" in endpoint else endpoint
    return host or None
