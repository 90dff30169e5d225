"""Nothing runs that should not: a model directory that ships its own code is not imported
unless trust_remote_code is passed explicitly."""

from __future__ import annotations

import json

import pytest

import zoo
from zoo.errors import WeightsError


def test_remote_code_in_a_model_directory_is_not_run_by_default(tmp_path):
    marker = tmp_path / "code-ran"
    model = tmp_path / "custom-model"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps(
            {
                "model_type": "zoo-evil",
                "architectures": ["EvilModel"],
                "auto_map": {"AutoConfig": "configuration_evil.EvilConfig", "AutoModel": "modeling_evil.EvilModel"},
            }
        )
    )
    payload = f"open({str(marker)!r}, 'w').write('pwned')\n"
    (model / "configuration_evil.py").write_text(
        payload + "from transformers import PretrainedConfig\n"
        "class EvilConfig(PretrainedConfig):\n    model_type = 'zoo-evil'\n"
    )
    (model / "modeling_evil.py").write_text(payload)
    with pytest.raises(WeightsError, match=r"text/hf-hub: cannot load .*custom-model: .*trust_remote_code"):
        zoo.load("text/hf-hub", pretrained=str(model))
    assert not marker.exists(), "the directory's code was executed"
