"""The `zoo` command: the group and its error handling (`zoo.cli.app`), the commands that
describe what is registered (`zoo.cli.registry`), those that train and evaluate
(`zoo.cli.runs`), `zoo compare` (`zoo.cli.compare`), and those that take trained models
out (`zoo.cli.shipping`: export, predict).

Errors a user can cause print one line (``zoo: error: ...``) and exit non-zero;
``--debug`` (or ``ZOO_DEBUG=1``) shows the traceback instead. Plugin problems are
warnings (``zoo: warning: ...``) and never stop a command.
"""

from __future__ import annotations

from zoo.cli import compare, protocols, registry, runs, shipping  # noqa: F401 - importing them adds their commands to the group
from zoo.cli.app import cli, main

__all__ = ["cli", "main"]
