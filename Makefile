# Quick start: `make run` starts Sprout, `make test` installs what the tests need and runs them.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
UV := python3 -m uv
PYTHON_VERSION := 3.11

.PHONY: run test lint bench lock clean llama

$(BIN)/python:
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) venv --quiet $(VENV)

$(VENV)/.run: requirements.lock pyproject.toml | $(BIN)/python
	$(UV) pip install --quiet --python $(BIN)/python --compile-bytecode --require-hashes -r requirements.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

$(VENV)/.dev: requirements-dev.lock pyproject.toml | $(BIN)/python
	$(UV) pip install --quiet --python $(BIN)/python --compile-bytecode --require-hashes -r requirements-dev.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@ $(VENV)/.run

# The web page runs beside the server; Ctrl-C (or the server exiting) stops both.
run: $(VENV)/.run
	@trap 'kill $$web 2>/dev/null' EXIT INT TERM; $(BIN)/sprout web & web=$$!; $(BIN)/sprout serve

lint: $(VENV)/.dev
	$(BIN)/ruff check sprout tests $(wildcard bench)
	$(BIN)/mypy

# The real model server one integration test meets (llama.cpp's, through llama-cpp-python,
# serving a tiny model from a package) lives in a venv of its own: to Sprout it is an outside
# server, its dependencies are not Sprout's, and only the tests need it.
# llama-cpp-python has no wheel for Linux, so it is compiled once (about 15 minutes of CPU,
# 8 on two cores) into a folder outside the clone, named after the sdist's pinned hash and the
# flags: fresh clones on the machine reuse it, and a new version or new flags compile it again. (uv's own
# cache of built wheels does not help here: a registry answer without cache headers makes
# uv download the sdist again, and every download is a new sdist to build.) The sdist is
# checked against its hash in the lock; the rest of the lock installs with hashes as usual.
# The flags make a portable build: a native one uses every instruction the CPU advertises,
# and some virtual machines advertise AVX-512 they cannot execute ("Illegal instruction").
# Only text models are served, so the multimodal library is not built.
LLAMA := $(VENV)/llama
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF;-DGGML_AVX2=ON;-DGGML_FMA=ON;-DGGML_F16C=ON;-DLLAVA_BUILD=OFF
LLAMA_WHEELS := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/sprout/llama-wheels
LLAMA_PIN := /^llama-cpp-python==/,/^[^ ]/{/^llama-cpp-python==\|--hash=/

$(LLAMA)/.built: requirements-llama.lock | $(BIN)/python
	@set -euo pipefail; \
	pin="$$(sed -n '$(LLAMA_PIN)p}' requirements-llama.lock)"; \
	key="$$(printf '%s\n%s\n' "$$pin" '$(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-16)"; \
	wheels="$(LLAMA_WHEELS)/$$key"; \
	if ! ls "$$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then \
		echo "Compiling llama-cpp-python once into $$wheels (about 8 minutes on two cores)"; \
		rm -rf "$$wheels.part" && mkdir -p "$$wheels.part"; \
		printf '%s\n' "$$pin" > "$$wheels.part/requirements.txt"; \
		CMAKE_ARGS="$(subst ;, ,$(LLAMA_CMAKE_ARGS))" python3 -m pip wheel --quiet --no-deps \
			--require-hashes -r "$$wheels.part/requirements.txt" -w "$$wheels.part"; \
		rm -rf "$$wheels" && mv "$$wheels.part" "$$wheels"; \
	fi; \
	$(UV) venv --quiet --allow-existing $(LLAMA); \
	sed '$(LLAMA_PIN)d}' requirements-llama.lock > $(LLAMA)/requirements-rest.txt; \
	$(UV) pip install --quiet --python $(LLAMA)/bin/python --require-hashes \
		-r $(LLAMA)/requirements-rest.txt; \
	$(UV) pip install --quiet --python $(LLAMA)/bin/python --no-deps "$$wheels"/llama_cpp_python-*.whl
	@touch $@

llama: $(LLAMA)/.built

# Debian packages the tests drive for real: a browser, and Redis and PostgreSQL servers (the
# tests start their own instances on loopback; nothing is started as a system service).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
test: lint $(LLAMA)/.built
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	$(BIN)/pytest --numprocesses auto --dist loadfile

bench: $(VENV)/.dev
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench $(BENCH_ARGS)

# Regenerate the hash-pinned lock files after changing dependencies in pyproject.toml.
lock:
	$(UV) pip compile pyproject.toml --generate-hashes --python-version $(PYTHON_VERSION) -q -o requirements.lock
	$(UV) pip compile pyproject.toml --extra dev --generate-hashes --python-version $(PYTHON_VERSION) -q -o requirements-dev.lock
	$(UV) pip compile requirements-llama.in --generate-hashes --python-version $(PYTHON_VERSION) -q -o requirements-llama.lock

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
