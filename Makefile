# Two entry points, both starting from nothing but Python 3.11:
#   make demo  - set up, index docs_corpus/ and answer a sample question
#   make test  - set up (with test tools) and run the whole test suite
# and, to iterate: make test-fast - the suite without its slow end-to-end tests (no lint)
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
# llama-cpp-python (used by the tests as a real OpenAI-compatible server) is built from source;
# native CPU detection produced a binary that crashed here, so target a portable x86-64 level.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
QUESTION ?= How many vacation days do I get per year?
# Test files run in this many processes (pytest-xdist); a file's tests stay together in one, so each
# module's bots and servers start once. Much of the suite waits on subprocesses: 2 pays even on 2 cores.
TEST_WORKERS ?= 2

.PHONY: demo test test-fast lint clean

$(VENV)/.runtime: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

$(VENV)/.test: $(VENV)/.runtime
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) -e '.[test]'
	touch $@

demo: $(VENV)/.runtime
	$(VENV)/bin/qwenbot index
	$(VENV)/bin/qwenbot ask "$(QUESTION)"

# The strict run keeps its own mypy cache: with other flags it would void the first run's cache each time.
lint: $(VENV)/.test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict --cache-dir .mypy_cache/strict bot retrieval

test: lint
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile

# The tests marked slow (real processes and servers: qwenbot run, replicas, PostgreSQL, llama.cpp, Chroma)
# are left out; `make test` runs them all.
test-fast: $(VENV)/.test
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow"

clean:
	rm -rf $(VENV) .qwenbot
