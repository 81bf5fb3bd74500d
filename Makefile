# One command sets up and runs each job on a fresh machine:
#   make demo   the main job: train a character LSTM on The Mysterious Island
#               for a few minutes, save it, print samples at alpha 2.0, 1.0, 0.5
#   make test   the test suite
# Both create .venv and install seqlab with torch pinned to the CPU build
# (constraints.txt), so no CUDA wheels are downloaded. Datasets are found
# through SEQLAB_DATA_DIR (default: ../shared/datasets when it exists), else
# the user cache, else downloaded and verified.

VENV    := .venv
PYTHON  := $(VENV)/bin/python
INSTALL := $(PYTHON) -m pip install --quiet --constraint constraints.txt

.PHONY: demo test clean

SHARED_DATASETS := $(abspath ../shared/datasets)
export SEQLAB_DATA_DIR ?= $(if $(wildcard $(SHARED_DATASETS)),$(SHARED_DATASETS),)

$(PYTHON):
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip

$(VENV)/.base: $(PYTHON) pyproject.toml constraints.txt
	$(INSTALL) -e .
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(INSTALL) -e '.[test]'
	touch $@

demo: $(VENV)/.base
	$(VENV)/bin/seqlab charlm demo

test: $(VENV)/.test
	$(VENV)/bin/lint-imports
	$(PYTHON) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
