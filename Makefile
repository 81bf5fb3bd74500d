# One command sets up and runs each job on a fresh machine:
#   make demo   the main job        make test   the test suite
# Both create .venv and install seqlab with torch pinned to the CPU build
# (constraints.txt), so no CUDA wheels are downloaded.

VENV    := .venv
PYTHON  := $(VENV)/bin/python
INSTALL := $(PYTHON) -m pip install --quiet --constraint constraints.txt

.PHONY: demo test clean

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
	$(VENV)/bin/seqlab demo

test: $(VENV)/.test
	$(PYTHON) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
