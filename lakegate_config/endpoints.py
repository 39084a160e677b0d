"""Where the servers may listen: loopback detection and an early check that a port is free."""

from __future__ import annotations

import ipaddress
import socket

from lakegate_errors import EnvironmentProblem


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is a loopback address (127.0.0.0/8, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%", 1)[0]).is_loopback for a in addresses
    )


def check_port_free(host: str, port: int) -> None:
    """Fail early, with the fix, when something already listens on `host:port` (0: any port).

    Raises:
        EnvironmentProblem: the port is taken (exit 3).
    """
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise EnvironmentProblem(
                f"cannot listen on {host}:{port} ({exc.strerror}); stop what uses the port or "
                "choose another with --port"
            ) from None
