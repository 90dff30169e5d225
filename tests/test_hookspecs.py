"""Every hook of the plugin contract is documented, in the plugin authors' guide and in its spec, and tested."""

from __future__ import annotations

import inspect

import pytest

import zoo
from zoo import hookspecs

from conftest import REPO

HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]


def test_the_contract_has_the_five_registration_hooks():
    assert HOOKS == [
        "register_backbones",
        "register_datasets",
        "register_export_formats",
        "register_path_formats",
        "register_tasks",
    ]


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook):
    assert inspect.getdoc(getattr(hookspecs, hook)), f"hook {hook} has no docstring"
    guide = REPO / "docs" / "plugins.md"
    assert f"{hook}(register)" in guide.read_text(), f"hook {hook} is missing from {guide.relative_to(REPO)}"


# What a plugin implementing only that hook registers; a new hook needs an entry here.
REGISTRATIONS = {
    "register_backbones": 'zoo.BackboneSpec(name="vision/hook-probe", modality="image", factory=f"{MODULE}:build")',
    "register_datasets": 'zoo.DatasetSpec(name="hook-probe", kind="text-classification", factory=f"{MODULE}:read", '
    "needs_data_root=False)",
    "register_tasks": 'zoo.TaskSpec(name="hook-probe", factory=f"{MODULE}:ProbeTask")',
    "register_path_formats": 'zoo.PathFormat(name="hook-probe", looks_for="a .probe file", claim=f"{MODULE}:claim")',
    "register_export_formats": 'zoo.ExportFormat(name="hook-probe", description="probe files", '
    'write=f"{MODULE}:claim", runner=f"{MODULE}:claim")',
}


@pytest.mark.parametrize("hook", HOOKS)
def test_what_a_hook_registers_is_where_zoo_looks_it_up(hook, site, tmp_path):
    from zoo.api import claim_path
    from zoo.data import dataset_reader
    from zoo.plugins import get_plugin_set

    assert hook in REGISTRATIONS, f"hook {hook} has no registration test"
    name = site.install(
        "zoo_fault_hook_probe",
        f"""
import zoo

MODULE = __name__

def build(spec, weights):
    raise NotImplementedError

def read(data_root):
    raise NotImplementedError

class ProbeTask:
    pass

def claim(path):
    return zoo.PathClaim(backbone="vision/example-convnet", pretrained=str(path)) if path.suffix == ".probe" else None

@zoo.hookimpl
def {hook}(register):
    register({REGISTRATIONS[hook]})
""",
    )
    info = next(info for info in zoo.plugins() if info.name == name)
    assert info.status == "ok" and info.hooks == [hook]
    registered = {
        "backbones": info.backbones,
        "datasets": info.datasets,
        "tasks": info.tasks,
        "path_formats": info.path_formats,
        "export_formats": info.export_formats,
    }
    kind = hook.removeprefix("register_")
    assert registered[kind] == ["vision/hook-probe" if kind == "backbones" else "hook-probe"]
    assert not any(names for other, names in registered.items() if other != kind)
    if kind == "backbones":
        assert zoo.get_spec("vision/hook-probe").plugin == name
    elif kind == "datasets":
        spec, reader = dataset_reader("hook-probe")
        assert spec.plugin == name and reader.__module__ == "zoo_fault_hook_probe"
    elif kind == "tasks":
        assert get_plugin_set().registry.get("task", "hook-probe").plugin == name
    elif kind == "export_formats":
        from zoo.exporting import get_format

        assert get_format("hook-probe").plugin == name
    else:
        probe = tmp_path / "model.probe"
        probe.write_text("")
        assert claim_path(probe, plugin=name) == zoo.PathClaim(backbone="vision/example-convnet", pretrained=str(probe))
        assert claim_path(probe).pretrained == str(probe)  # a third-party format is asked before the built-ins
