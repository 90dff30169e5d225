"""Plugin loading through real entry points, and every way a plugin can be broken.

Each fault case checks the exact message and that the rest of the registry
(the built-in families and the installed example plugin) still works.
"""

from __future__ import annotations

import pytest

import zoo
from zoo.errors import FactoryError, PluginError, PluginWarning

BUILTIN = {"transformers", "timm", "openclip", "torchhub"}

GOOD = """
import zoo

@zoo.hookimpl
def register_backbones(register):
    register(zoo.BackboneSpec(name="vision/fault-good", modality="image", factory="zoo_fault_good:build"))
"""


def plugin_named(name):
    return next(info for info in zoo.plugins() if info.name == name)


def assert_rest_works():
    names = zoo.list_backbones()
    assert "text/minilm-l6" in names and "vision/efficientnet-lite0" in names and "clip/lite0-minilm-l6" in names
    assert "vision/example-convnet" in names
    assert {info.name for info in zoo.plugins() if info.status == "ok"} >= BUILTIN | {"example"}


def quarantined(site, module, source, **kwargs):
    """Install a broken plugin; return (its PluginInfo, the warning message)."""
    name = site.install(module, source, **kwargs)
    with pytest.warns(PluginWarning) as caught:
        zoo.plugins()
    info = plugin_named(name)
    assert info.status == "failed"
    messages = [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]
    assert len(messages) == 1 and "\n" not in messages[0]
    assert_rest_works()
    return info, messages[0]


def test_builtin_families_and_example_plugin_load_through_entry_points():
    infos = {info.name: info for info in zoo.plugins()}
    assert set(infos) >= BUILTIN and "example" in infos
    for name in BUILTIN:
        assert infos[name].distribution == "zoo" and infos[name].builtin
        hooks = ["register_backbones", "register_path_formats"]
        if name != "torchhub":  # a hubconf folder's model has no ecosystem of its own to go back to: onnx/pt2
            hooks.insert(1, "register_export_formats")
        assert infos[name].status == "ok" and infos[name].hooks == hooks
        assert len(infos[name].path_formats) == 1
    example = infos["example"]
    assert example.distribution == "zoo-example-plugin" and not example.builtin
    assert example.backbones == ["vision/example-convnet"]
    assert zoo.get_spec("vision/example-convnet").plugin == "example"


def test_a_third_party_plugin_installed_as_a_distribution_is_found(site):
    name = site.install("zoo_fault_good", GOOD, dist="zoo-good", version="2.3")
    info = plugin_named(name)
    assert (info.status, info.distribution, info.version) == ("ok", "zoo-good", "2.3")
    assert info.backbones == ["vision/fault-good"] and info.requirement == "zoo-good==2.3"
    assert zoo.get_spec("fault-good").plugin == name
    assert_rest_works()


def test_import_error_is_quarantined(site):
    info, message = quarantined(site, "zoo_fault_import", "import zoo\nimport no_such_module_anywhere\n")
    assert message == (
        "plugin 'fault_import' (zoo-fault-import 0.1.0) quarantined: import failed: "
        "ModuleNotFoundError: No module named 'no_such_module_anywhere'"
    )
    assert info.error.startswith("import failed: ModuleNotFoundError")


def test_syntax_error_is_quarantined(site):
    _, message = quarantined(site, "zoo_fault_syntax", "def broken(:\n")
    assert "quarantined: import failed: SyntaxError" in message


@pytest.mark.parametrize(
    ("hook", "spec"),
    [
        ("register_backbones", 'zoo.BackboneSpec(name="vision/fault-partial", modality="image", factory="m:f")'),
        ("register_datasets", 'zoo.DatasetSpec(name="fault-partial", kind="text-classification", factory="m:f")'),
        ("register_tasks", 'zoo.TaskSpec(name="fault-partial", factory="m:f")'),
    ],
)
def test_exception_in_any_hook_is_quarantined(site, hook, spec):
    source = f"""
import zoo

@zoo.hookimpl
def {hook}(register):
    register({spec})
    raise RuntimeError("database is on fire")
"""
    info, message = quarantined(site, "zoo_fault_hook", source)
    assert message == (
        f"plugin 'fault_hook' (zoo-fault-hook 0.1.0) quarantined: hook {hook} raised RuntimeError: database is on fire"
    )
    # registrations of a quarantined plugin never land, even those made before the failure
    assert info.backbones == info.datasets == info.tasks == []
    assert "vision/fault-partial" not in zoo.list_backbones()


def test_registering_a_non_spec_object_is_quarantined(site):
    source = """
import zoo

@zoo.hookimpl
def register_backbones(register):
    register({"name": "vision/dict"})
"""
    _, message = quarantined(site, "zoo_fault_type", source)
    assert message.endswith(
        "hook register_backbones raised TypeError: "
        "register_backbones registered a dict; register() takes a zoo.BackboneSpec"
    )


def test_registering_the_wrong_kind_of_spec_is_quarantined(site):
    source = """
import zoo

@zoo.hookimpl
def register_datasets(register):
    register(zoo.BackboneSpec(name="vision/wrong-hook", modality="image", factory="m:f"))
"""
    _, message = quarantined(site, "zoo_fault_kind", source)
    assert "register_datasets registered a BackboneSpec; register() takes a zoo.DatasetSpec" in message


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ('name="Vision/Upper", modality="image", factory="m:f"', "backbone name 'Vision/Upper' is invalid"),
        ('name="vision/x", modality="smell", factory="m:f"', "backbone 'vision/x': unknown modality 'smell'"),
        (
            'name="vision/x", modality="image", factory="no-colon"',
            "backbone 'vision/x': factory 'no-colon' must be a 'package.module:callable' path",
        ),
        (
            'name="vision/x", modality="image", factory="m:f", params=-3',
            "backbone 'vision/x': params must be a non-negative integer or None, got -3",
        ),
        (
            'name="vision/x", modality="image", factory="m:f", weights=("in1k",)',
            "backbone 'vision/x': weights must be zoo.Weights entries, got str",
        ),
    ],
)
def test_malformed_spec_is_quarantined(site, spec, reason):
    source = f"""
import zoo

@zoo.hookimpl
def register_backbones(register):
    register(zoo.BackboneSpec({spec}))
"""
    _, message = quarantined(site, "zoo_fault_spec", source)
    assert f"hook register_backbones raised SpecError: {reason}" in message


def test_duplicate_backbone_name_is_an_error_naming_both_plugins(site):
    source = """
import zoo

@zoo.hookimpl
def register_backbones(register):
    register(zoo.BackboneSpec(name="vision/fault-own", modality="image", factory="m:f"))
    register(zoo.BackboneSpec(name="vision/efficientnet-lite0", modality="image", factory="m:f"))
"""
    info, message = quarantined(site, "zoo_fault_dup", source)
    assert message.endswith(
        "quarantined: backbone 'vision/efficientnet-lite0' is registered by both plugin 'timm' and plugin 'fault_dup'"
    )
    assert zoo.get_spec("vision/efficientnet-lite0").plugin == "timm"
    assert "vision/fault-own" not in zoo.list_backbones()  # rolled back with the rest of the plugin


def test_duplicate_alias_clashes_too(site):
    source = """
import zoo

@zoo.hookimpl
def register_backbones(register):
    register(zoo.BackboneSpec(name="text/other", modality="text", factory="m:f", aliases=("all-minilm-l6-v2",)))
"""
    _, message = quarantined(site, "zoo_fault_alias", source)
    assert "backbone 'text/other' is registered by both plugin 'transformers' and plugin 'fault_alias'" in message


@pytest.mark.parametrize(
    ("declared", "reason"),
    [
        (">=3,<4", "supports zoo API '>=3,<4', but this zoo provides API 2.0"),
        ("version one", "declares zoo_api = 'version one', which is not a version range like '>=1,<2'"),
    ],
)
def test_unsupported_core_api_range_is_quarantined(site, declared, reason):
    source = f"import zoo\nzoo_api = {declared!r}\n" + GOOD.replace("import zoo\n", "")
    info, message = quarantined(site, "zoo_fault_api", source)
    assert message.endswith(reason)
    assert "vision/fault-good" not in zoo.list_backbones()


def test_supported_core_api_range_loads(site):
    name = site.install("zoo_fault_good", "import zoo\nzoo_api = '>=1.0,<2'\n" + GOOD.replace("import zoo\n", ""))
    assert plugin_named(name).status == "ok"


def test_misspelt_hook_is_quarantined(site):
    source = """
import zoo

@zoo.hookimpl
def register_backbone(register):
    pass
"""
    _, message = quarantined(site, "zoo_fault_typo", source)
    assert "implements unknown hook(s) register_backbone; zoo's hooks are: register_backbones" in message


def test_hook_with_arguments_outside_the_spec_is_quarantined(site):
    source = """
import zoo

@zoo.hookimpl
def register_backbones(register, colour):
    pass
"""
    _, message = quarantined(site, "zoo_fault_args", source)
    assert "quarantined: Plugin 'fault_args' for hook 'register_backbones'; hookimpl definition" in message
    assert "Argument(s) {'colour'} are declared in the hookimpl but can not be found in the hookspec" in message


def test_strict_mode_turns_a_failure_into_an_error(site, monkeypatch):
    site.install("zoo_fault_import", "import no_such_module_anywhere\n")
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"plugin 'fault_import' .* quarantined: import failed: .*STRICT"):
        zoo.plugins()


def test_block_list_skips_named_plugins(monkeypatch):
    monkeypatch.setenv("ZOO_BLOCK_PLUGINS", "openclip, zoo-example-plugin")
    infos = {info.name: info for info in zoo.plugins()}
    assert infos["openclip"].status == "blocked" and infos["example"].status == "blocked"
    names = zoo.list_backbones()
    assert "clip/lite0-minilm-l6" not in names and "vision/example-convnet" not in names
    assert "vision/efficientnet-lite0" in names


def test_load_list_loads_only_named_plugins(monkeypatch):
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "timm")
    infos = {info.name: info.status for info in zoo.plugins()}
    assert infos["timm"] == "ok" and infos["transformers"] == "not loaded"
    assert all(name.startswith("vision/") for name in zoo.list_backbones())


def test_empty_load_list_loads_no_plugin(monkeypatch):
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "")
    assert zoo.list_backbones() == []


def test_factory_path_that_does_not_import_is_a_clear_error(site):
    site.install(
        "zoo_fault_factory",
        """
import zoo

@zoo.hookimpl
def register_backbones(register):
    register(zoo.BackboneSpec(name="vision/fault-factory", modality="image",
                              factory="zoo_fault_factory.missing:build"))
""",
    )
    with pytest.raises(FactoryError) as caught:
        zoo.load("vision/fault-factory")
    assert str(caught.value) == (
        "backbone 'vision/fault-factory' (plugin 'fault_factory'): factory 'zoo_fault_factory.missing:build' "
        "does not import (ModuleNotFoundError: No module named 'zoo_fault_factory.missing')"
    )
    assert_rest_works()


def test_requirements_reinstall_the_plugin_set(site):
    site.install("zoo_fault_good", GOOD, dist="zoo-good", version="2.3")
    requirements = {info.requirement for info in zoo.plugins()}
    assert "zoo-good==2.3" in requirements
    assert any(r.startswith("-e ") and r.endswith("zoo-example-plugin") for r in requirements)
