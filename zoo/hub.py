"""Whether a download host answers, asked once before a hub download.

Hub clients retry a failed connection for about a minute before they give up,
so on an offline machine a plugin asks ``reachable(url)`` first (one TCP
connection, through the configured proxy if there is one) and, when the answer
is no, loads from its local cache only or says at once how to load a local copy:

    from huggingface_hub import constants
    with offline_unless_reachable(constants.ENDPOINT, constants, "HF_HUB_OFFLINE"):
        model = library.create_model(name, pretrained=True)
"""

from __future__ import annotations

import contextlib
import socket
import urllib.request
from urllib.parse import urlsplit

TIMEOUT_S = 3.0


def reachable(url: str, timeout: float = TIMEOUT_S) -> bool:
    """True when a TCP connection to ``url``'s host (or its proxy) opens within ``timeout`` seconds.

    Asked afresh each time (once per load, not per file), so a machine that comes back online is noticed.
    """
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and host and not urllib.request.proxy_bypass(host):
        proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy_parts.hostname, proxy_parts.port or 80
    if not host:
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def offline_unless_reachable(url: str, owner: object, switch: str):
    """Inside the block, ``owner.<switch>`` (a library's offline flag) is True when ``url`` cannot be reached.

    The flag is restored on the way out. Reached or not, the library still reads its local
    cache, so weights downloaded earlier keep loading offline.
    """
    if reachable(url):
        yield
        return
    saved = getattr(owner, switch)
    setattr(owner, switch, True)
    try:
        yield
    finally:
        setattr(owner, switch, saved)
