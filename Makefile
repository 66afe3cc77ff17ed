# `make demo` and `make test` each set up everything they need on a fresh machine.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST := $(PY) -m pytest -q -p no:cacheprovider --durations=15
# Keras reads image_data_format from $KERAS_HOME/keras.json; this home makes
# the torch backend run channels_first, as Keras' own CI does.
CF_HOME := $(CURDIR)/.keras-channels-first
# The heavy registry models (marked slow) run their per-backend tests on torch;
# the cross tests still build every model on all three backends. JAX skips the
# training step of the two models it compiles slowest (marked jax_slow).
# Tests of code that is the same on every backend (file formats, CLI wiring,
# run folders; marked one_backend) run on torch only.
MARKS_tensorflow := not cross and not slow and not one_backend
MARKS_torch      := not cross
MARKS_jax        := not cross and not slow and not jax_slow and not one_backend

# JAX keeps compiled programs in a persistent cache (portaclass turns it on
# for users too): the suite gets its own, emptied at the start of every
# `make test` so each run costs what a fresh CI machine pays, and caches every
# compile (the threshold users keep is 1 s), as many tests train the same
# small model. The cross tests' JAX processes share it.
JAX_CACHE := $(CURDIR)/.jax-cache
TEST_TARGETS := test-tensorflow test-torch test-jax test-channels-first test-cross
$(TEST_TARGETS): export JAX_COMPILATION_CACHE_DIR := $(JAX_CACHE)
$(TEST_TARGETS): export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS := 0

.PHONY: install demo test lint browser test-tensorflow test-torch test-jax test-channels-first test-cross clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all,test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/portaclass quickstart

# The suites are mostly single-threaded (tracing, compiling, Python), so they
# run side by side on the two cores; -O keeps each suite's output together.
# (One pool of all five jobs measured slower: the cross tests start three
# processes of their own.)
# The report test opens report.html in Debian's Chromium; it skips, saying
# why, where the package can't be installed (no root, no apt).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo -n)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the report's browser test"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q >/dev/null 2>&1 && \
	    $(SUDO) apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; } || \
	  echo "chromium could not be installed: the browser test will skip"; }

test: $(STAMP) lint browser
	rm -rf $(JAX_CACHE)
	$(MAKE) --no-print-directory -j3 -O test-tensorflow test-torch test-jax
	$(MAKE) --no-print-directory -j2 -O test-channels-first test-cross

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

test-tensorflow test-torch test-jax: test-%: $(STAMP)
	@echo "=== pytest on $*"
	KERAS_BACKEND=$* $(PYTEST) -m "$(MARKS_$*)"

test-channels-first: $(STAMP)
	@mkdir -p $(CF_HOME)
	@echo '{"backend": "torch", "image_data_format": "channels_first", "floatx": "float32", "epsilon": 1e-07}' > $(CF_HOME)/keras.json
	@echo "=== pytest on torch, channels_first"
	KERAS_HOME=$(CF_HOME) KERAS_BACKEND=torch $(PYTEST) -m "not cross and not slow" tests/test_layout.py tests/models tests/data/test_pipeline.py tests/data/test_augment.py tests/report/test_gradcam.py tests/test_predict.py tests/export/test_export.py

test-cross: $(STAMP)
	@echo "=== cross-backend tests"
	KERAS_BACKEND=torch $(PYTEST) -m "cross and not slow"

clean:
	rm -rf $(VENV) $(CF_HOME) $(JAX_CACHE) runs .pytest_cache artifacts
