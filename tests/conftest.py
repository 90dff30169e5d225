"""Shared fixtures: real installed-looking plugins, a fresh plugin set per test, the CLI."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from zoo.plugins import reset as reset_plugins

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("ZOO_DATA", REPO.parent / "shared" / "data"))
# --set options that make recipes/flickr8k-minilm-text2text.yaml the smallest contrastive job the
# torchrun tests launch: bert-tiny, 32 training and 16 test images' captions, three steps
TINY_CONTRASTIVE = [
    "model=text/bert-tiny",
    "data_options.train_images=32",
    "data_options.test_images=16",
    "max_steps=3",
    "batch_size=16",
    "lr=1e-3",
]
# one cache per test session (tokens, decoded images, features), shared with `zoo` subprocesses
os.environ.setdefault("ZOO_CACHE", tempfile.mkdtemp(prefix="zoo-test-cache-"))
os.environ.setdefault("ZOO_DATA", str(DATA_ROOT))


@pytest.fixture(autouse=True)
def fresh_plugins(monkeypatch):
    """Every test sees freshly loaded plugins and no plugin-selection environment."""
    for variable in ("ZOO_STRICT_PLUGINS", "ZOO_LOAD_PLUGINS", "ZOO_BLOCK_PLUGINS"):
        monkeypatch.delenv(variable, raising=False)
    reset_plugins()
    yield
    reset_plugins()


class SitePackages:
    """A directory laid out like site-packages: installing a plugin writes its module and
    a ``*.dist-info`` with ``entry_points.txt``, exactly what pip writes, so zoo's real
    entry-point loader finds it. The directory is on ``sys.path`` (for in-process tests)
    and in ``env`` (for `zoo` subprocesses)."""

    def __init__(self, root: Path):
        self.root = root
        self.env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        for variable in ("ZOO_STRICT_PLUGINS", "ZOO_LOAD_PLUGINS", "ZOO_BLOCK_PLUGINS", "ZOO_DEBUG"):
            self.env.pop(variable, None)

    def install(
        self,
        module: str,
        source: str,
        *,
        dist: str | None = None,
        version: str = "0.1.0",
        entry_point: str | None = None,
    ) -> str:
        """Install plugin module ``module`` with ``source``; return its entry-point name."""
        dist = dist or module.replace("_", "-")
        entry_point = entry_point or module.removeprefix("zoo_")
        package = self.root / module
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text(textwrap.dedent(source))
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[zoo]\n{entry_point} = {module}\n")
        importlib.invalidate_caches()
        reset_plugins()
        return entry_point


@pytest.fixture
def site(tmp_path, monkeypatch) -> SitePackages:
    root = tmp_path / "site-packages"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    yield SitePackages(root)
    for name in [m for m in sys.modules if m.startswith("zoo_fault")]:
        del sys.modules[name]


def run_zoo(*args: str, env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """Run the installed `zoo` command (as ``python -m zoo``) in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )
    if check and result.returncode != 0:
        raise AssertionError(f"zoo {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


@pytest.fixture
def cli(capsys):
    """``cli(*args)``: the `zoo` command run in this process through `zoo.cli.app.main` (what the console
    script calls), as a CompletedProcess; seconds cheaper than `run_zoo` where a fresh process (another
    environment, import costs) is not what is tested."""
    from zoo.cli.app import main

    def call(*args: str, check: bool = False) -> subprocess.CompletedProcess:
        code = main(list(args))
        captured = capsys.readouterr()
        if check and code != 0:
            raise AssertionError(f"zoo {' '.join(args)} failed ({code}):\n{captured.err}")
        return subprocess.CompletedProcess(["zoo", *args], code, captured.out, captured.err)

    return call


def assert_headline_interval(results: dict, run_dir: Path) -> None:
    """A run's headline metric has a bootstrap interval around its value, and the per-item outputs it
    saved recompute that value (what `zoo compare` resamples for its intervals and marks)."""
    from zoo.tasks.uncertainty import item_metrics, load_items

    split, metric = results["test_split"], results["primary_metric"]
    value, interval = results["metrics"][split][metric], results["intervals"][split][metric]
    assert interval["low"] <= value <= interval["high"] and interval["low"] < interval["high"]
    assert "bootstrap" in interval["method"] and interval["level"] == 0.95
    outputs, metadata = load_items(run_dir / results["items"][split])
    assert metadata["split"] == split
    assert item_metrics(outputs)[metric] == pytest.approx(value, abs=1e-6)  # clip_benchmark: float32 means
