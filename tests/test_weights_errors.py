"""Bad weights and bad composition: each gets one clear error, and nothing from a file is executed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

import zoo
from zoo.errors import WeightsError, ZooError
from zoo.hub import offline_unless_reachable, reachable
from zoo.validation import FileError

from conftest import REPO


def test_unreachable_hubs_fail_at_once_with_how_to_load_locally():
    """An unreachable hub (here: nothing listens at its address) is one probe and a cache lookup, not retries."""
    code = (
        "import zoo\n"
        "for name in ('text/hf-hub:no-such-org/no-such-model', 'vision/timm:resnet18.a1_in1k',\n"
        "             'clip/open-clip:ViT-B-32/openai'):\n"
        "    try:\n        zoo.load(name)\n"
        "    except zoo.ZooError as e:\n        print('ERROR', e)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_HUB_OFFLINE") and "proxy" not in k.lower()}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**env, "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"},
    )
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 3, result.stdout + result.stderr
    assert errors[0].startswith("ERROR cannot fetch 'no-such-org/no-such-model' from the Hugging Face hub")
    assert errors[0].endswith("zoo.load('text/hf-hub', pretrained='DIR')")
    assert errors[1].startswith("ERROR cannot fetch timm weights for 'resnet18.a1_in1k'")
    assert errors[2].startswith("ERROR cannot load open_clip ViT-B-32 weights 'openai'")
    assert "Retrying" not in result.stderr  # huggingface_hub's minute of retries was skipped
    assert result.stderr.strip() == ""  # zoo's error is the one line: no library log lines around it


def closed_port() -> int:
    """A local port nothing listens on: connections to it are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_reachable_probes_the_host_or_its_proxy(monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        open_port = server.getsockname()[1]
        for variable in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
            monkeypatch.delenv(variable, raising=False)
        assert reachable(f"http://127.0.0.1:{open_port}/models")
        assert not reachable(f"http://127.0.0.1:{closed_port()}/models")
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{open_port}")
        assert reachable("http://hub.invalid/models")  # through the proxy


def test_offline_switch_is_set_only_inside_the_block_and_only_when_unreachable():
    class Library:
        OFFLINE = False

    with offline_unless_reachable(f"http://127.0.0.1:{closed_port()}", Library, "OFFLINE"):
        assert Library.OFFLINE
    assert not Library.OFFLINE
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with offline_unless_reachable(f"http://127.0.0.1:{server.getsockname()[1]}", Library, "OFFLINE"):
            assert not Library.OFFLINE


def test_hub_source_needs_an_id():
    with pytest.raises(ZooError, match=r"name the hub model: zoo.load\('text/hf-hub:ORG/MODEL'\)"):
        zoo.load("text/hf-hub")


def test_local_directory_without_config(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(WeightsError, match="has no config.json; a Hugging Face model directory needs config.json"):
        zoo.load("text/hf-hub", pretrained=str(tmp_path))


def test_weights_of_another_architecture_name_the_first_bad_tensor(tmp_path):
    lite0 = zoo.load("vision/efficientnet-lite0")
    path = tmp_path / "lite0.safetensors"
    save_file({k: v.contiguous() for k, v in lite0.model.state_dict().items()}, str(path))
    with pytest.raises(WeightsError) as caught:
        zoo.load("vision/efficientnet-lite2", pretrained=str(path), preprocessing=lite0.preprocessing)
    message = str(caught.value)
    assert message.startswith(f"{path} does not fit vision/efficientnet-lite2: tensor 'blocks.")
    assert "in the file but" in message and "(weights of another architecture?)" in message


def test_missing_tensors_are_counted(tmp_path):
    path = tmp_path / "partial.safetensors"
    model = zoo.load("vision/resnet10t")
    state = {k: v.contiguous() for k, v in model.model.state_dict().items() if not k.startswith("layer4")}
    save_file(state, str(path))
    with pytest.raises(WeightsError, match=r"tensor\(s\) missing from the file, first 'layer4"):
        zoo.load("vision/resnet10t", pretrained=str(path), preprocessing=model.preprocessing)


def test_truncated_weights_files(tmp_path):
    model = zoo.load("vision/resnet10t")
    good = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.model.state_dict().items()}, str(good))
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightsError, match=f"weights file {cut} is corrupt or truncated"):
        zoo.load("vision/resnet10t", pretrained=str(cut))
    pth = tmp_path / "w.pth"
    torch.save(model.model.state_dict(), pth)
    cut_pth = tmp_path / "cut.pth"
    cut_pth.write_bytes(pth.read_bytes()[:1000])
    with pytest.raises(WeightsError, match=f"weights file {cut_pth} is corrupt or truncated"):
        zoo.load("vision/resnet10t", pretrained=str(cut_pth))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_with_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"conv1.weight": _Payload(marker)}, evil)
    with pytest.raises(WeightsError, match="holds Python objects other than tensors; refusing to unpickle it"):
        zoo.load("vision/resnet10t", pretrained=str(evil))
    assert not marker.exists()


def test_saved_directory_checksum_and_preprocessing_are_verified(tmp_path):
    saved = zoo.load("vision/example-convnet").save(tmp_path / "net")
    weights = saved / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="checksum does not match zoo.json; the file is corrupt or was changed"):
        zoo.load(str(saved))
    saved = zoo.load("vision/example-convnet").save(tmp_path / "net")
    config = json.loads((saved / "zoo.json").read_text())
    config["preprocessing"]["mean"] = [0.0, 0.0, 0.0]
    (saved / "zoo.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="refusing to pair weights with the wrong preprocessing"):
        zoo.load(str(saved))
    del config["preprocessing"]
    (saved / "zoo.json").write_text(json.dumps(config))
    with pytest.raises(FileError, match="zoo.json: the top level: 'preprocessing' is a required property"):
        zoo.load(str(saved))


def test_raw_weights_without_preprocessing_warn_loudly(tmp_path):
    model = zoo.load("vision/resnet10t")
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.model.state_dict().items()}, str(path))
    with pytest.warns(zoo.PreprocessingWarning, match="carry no preprocessing config"):
        zoo.load("vision/resnet10t", pretrained=str(path))


def test_joined_towers_without_projection_dims():
    with pytest.raises(
        ZooError,
        match="gives 1280-d and text tower text/minilm-l6 384-d embeddings, and no "
        r"projection dims were given: set proj_dim",
    ):
        zoo.load("clip/lite0-minilm-l6", proj_dim=None)


def test_joined_towers_must_have_the_right_modalities():
    with pytest.raises(ZooError, match="the image tower must be an image backbone"):
        zoo.load("clip/lite0-minilm-l6", image_tower="text/bert-tiny", pretrained=False)


def test_open_clip_architecture_loads_a_local_checkpoint_offline(tmp_path):
    random_init = zoo.load("clip/open-clip:ViT-S-32", pretrained=False).eval()
    checkpoint = tmp_path / "vit-s-32.pt"
    torch.save(random_init.model.state_dict(), checkpoint)
    loaded = zoo.load("clip/open-clip:ViT-S-32", pretrained=str(checkpoint)).eval()
    assert loaded.weights == str(checkpoint)
    with torch.no_grad():
        texts = ["a dog", "a cat"]
        assert torch.equal(random_init.encode_text(texts), loaded.encode_text(texts))
    with pytest.raises(ZooError, match=r"name the pretrained tag: zoo.load\('clip/open-clip:ViT-S-32/TAG'\)"):
        zoo.load("clip/open-clip:ViT-S-32")
    with pytest.raises(ZooError, match="open_clip has no architecture 'NoSuchArch'"):
        zoo.load("clip/open-clip:NoSuchArch/x")
