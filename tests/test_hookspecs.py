"""Every hook of the plugin contract is documented, in the README and in its spec, and tested."""

from __future__ import annotations

import inspect

import pytest

from conftest import REPO
from zoo import hookspecs

HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]


def test_the_contract_has_the_four_registration_hooks():
    assert HOOKS == ["register_backbones", "register_datasets", "register_path_formats", "register_tasks"]


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_and_tested(hook):
    assert inspect.getdoc(getattr(hookspecs, hook)), f"hook {hook} has no docstring"
    assert f"{hook}(register)" in (REPO / "README.md").read_text(), f"hook {hook} is missing from the README"
    tests = "".join(path.read_text() for path in (REPO / "tests").glob("test_*.py") if path.name != "test_hookspecs.py")
    assert hook in tests, f"hook {hook} has no test"
