"""Plugin faults beyond a plain exception: slow and hanging plugins, plugins that patch zoo,
and a `register` kept for later. The host keeps working and reports each."""

from __future__ import annotations

import time

import pytest

import zoo
from zoo.errors import PluginWarning

from conftest import run_zoo

SPEC = 'zoo.BackboneSpec(name="vision/fault-{name}", modality="image", factory="zoo_fault_{name}:build")'


def plugin(name: str, body: str, before: str = "") -> str:
    return (
        f"import time\nimport zoo\n{before}\n@zoo.hookimpl\ndef register_backbones(register):\n"
        f"    {body}\n    register({SPEC.format(name=name)})\n"
    )


def info_of(name: str):
    return next(info for info in zoo.plugins() if info.name == name)


def assert_rest_works():
    assert {"text/minilm-l6", "vision/example-convnet", "clip/lite0-minilm-l6"} <= set(zoo.list_backbones())


def test_a_slow_plugin_is_reported_with_its_time(site):
    name = site.install("zoo_fault_slow", plugin("slow", "time.sleep(2.2)"))
    with pytest.warns(PluginWarning, match=r"plugin 'fault_slow' is slow to load: 2\.\d s for its import and hooks"):
        zoo.plugins()
    info = info_of(name)
    assert info.status == "ok" and info.load_seconds >= 2.2 and "vision/fault-slow" in zoo.list_backbones()
    listing = run_zoo("plugins", env={**site.env, "ZOO_PLUGIN_TIMEOUT": "10"})
    row = next(line for line in listing.stdout.splitlines() if "fault_slow" in line)
    assert any(cell.isdigit() and int(cell) >= 2200 for cell in row.split()), row  # the "load ms" column


@pytest.mark.parametrize("where", ["hook", "import"])
def test_a_hanging_plugin_is_quarantined_after_the_timeout(site, monkeypatch, where):
    source = plugin("hang", "time.sleep(3600)") if where == "hook" else plugin("hang", "pass", "time.sleep(3600)")
    name = site.install("zoo_fault_hang", source)
    monkeypatch.setenv("ZOO_PLUGIN_TIMEOUT", "1")
    started = time.perf_counter()
    what = "hook register_backbones" if where == "hook" else "its import"
    with pytest.warns(PluginWarning, match=f"plugin 'fault_hang' .* quarantined: {what} did not return within 1 s"):
        zoo.plugins()
    assert time.perf_counter() - started < 6
    assert info_of(name).status == "failed" and "vision/fault-hang" not in zoo.list_backbones()
    assert_rest_works()


def test_a_plugin_that_replaces_zoo_functions_is_undone_and_quarantined(site):
    source = plugin(
        "patch",
        "pass",
        "zoo.load = lambda *a, **k: 'hijacked'\nimport zoo.registry\n"
        "zoo.registry.Registry.get = lambda self, kind, name: None",
    )
    name = site.install("zoo_fault_patch", source)
    with pytest.warns(PluginWarning, match=r"quarantined: modified zoo\.load, zoo\.registry\.Registry\.get?.*"):
        zoo.plugins()
    assert info_of(name).status == "failed"
    assert zoo.load("vision/example-convnet").num_params() == 23_696  # the real load, the real registry
    assert zoo.get_spec("vision/example-convnet").name == "vision/example-convnet"
    assert "vision/fault-patch" not in zoo.list_backbones()
    assert_rest_works()


def test_a_plugin_that_edits_the_registry_tables_is_undone_and_quarantined(site):
    source = (
        plugin("edit", "pass")
        + """
@zoo.hookimpl
def register_tasks(register):
    import gc, warnings
    from zoo.registry import Registry
    with warnings.catch_warnings():  # gc.get_objects touches deprecated torch attributes
        warnings.simplefilter("ignore")
        registry = next(o for o in gc.get_objects() if isinstance(o, Registry) and not o.closed)
    registry._specs["backbone"].pop("text/minilm-l6")  # sabotage another plugin's entry
"""
    )
    name = site.install("zoo_fault_edit", source)
    with pytest.warns(PluginWarning, match=r"quarantined: modified the registry's backbone table while loading"):
        zoo.plugins()
    assert info_of(name).status == "failed" and "vision/fault-edit" not in zoo.list_backbones()
    assert_rest_works()


def test_after_loading_the_registry_is_read_only_and_late_registration_is_refused(site):
    source = plugin("late", "global KEPT\n    KEPT = register")
    site.install("zoo_fault_late", source)
    assert "vision/fault-late" in zoo.list_backbones()
    import zoo_fault_late

    with pytest.raises(zoo.ZooError, match="called after the hook returned"):
        zoo_fault_late.KEPT(zoo.BackboneSpec(name="vision/fault-later", modality="image", factory="m:f"))
    from zoo.api import get_plugin_set

    registry = get_plugin_set().registry
    with pytest.raises(zoo.ZooError, match="the registry is closed once plugins have loaded"):
        registry.add(zoo.BackboneSpec(name="vision/fault-later", modality="image", factory="m:f"), "x")
    with pytest.raises(TypeError):
        registry._specs["backbone"]["vision/fault-later"] = None
    assert_rest_works()
