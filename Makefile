# `make demo` and `make test` each set up everything they need on a fresh machine.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST := $(PY) -m pytest -q -p no:cacheprovider
BACKENDS := tensorflow torch jax
# Keras reads image_data_format from $KERAS_HOME/keras.json; this home makes
# the torch backend run channels_first, as Keras' own CI does.
CF_HOME := $(CURDIR)/.keras-channels-first

.PHONY: install demo test test-backends test-channels-first test-cross lint clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all,test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/portaclass quickstart

test: $(STAMP) lint test-backends test-channels-first test-cross

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

test-backends: $(STAMP)
	@for b in $(BACKENDS); do \
		echo "=== pytest on $$b"; \
		KERAS_BACKEND=$$b $(PYTEST) -m "not cross" || exit 1; \
	done

test-channels-first: $(STAMP)
	@mkdir -p $(CF_HOME)
	@echo '{"backend": "torch", "image_data_format": "channels_first", "floatx": "float32", "epsilon": 1e-07}' > $(CF_HOME)/keras.json
	@echo "=== pytest on torch, channels_first"
	KERAS_HOME=$(CF_HOME) KERAS_BACKEND=torch $(PYTEST) -m "not cross" tests/test_layout.py tests/models tests/data

test-cross: $(STAMP)
	@echo "=== cross-backend tests"
	KERAS_BACKEND=torch $(PYTEST) -m cross

clean:
	rm -rf $(VENV) $(CF_HOME) runs .pytest_cache
