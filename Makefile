# The two commands of the README: `make demo` and `make test`. Both set up everything
# they need on a fresh Debian/Ubuntu machine: a venv, the Python dependencies,
# redis-server (apt-get) and the native extension (maturin, release build).

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deps-stamp
# apt-get runs as root: directly, or through sudo when that exists.
SUDO := $(shell [ "$$(id -u)" = 0 ] || { command -v sudo >/dev/null && echo sudo; })
# cargo test links the extension crate against libpython.
PYLIBDIR = $(shell $(PY) -c "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))")

.PHONY: demo test build venv redis chromium lint bench bench-peers soak clean wheel-test docs cross-check

demo: redis build
	$(PY) examples/basic_usage.py

test: redis chromium build
	PYO3_PYTHON=$(abspath $(PY)) LD_LIBRARY_PATH=$(PYLIBDIR)$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH} \
		cargo test
	$(PY) -m pytest -q
	# The same tests on a Redis Cluster and behind Sentinel (tests/conftest.py).
	JOBQUEUE_TEST_REDIS=cluster $(PY) -m pytest -q
	JOBQUEUE_TEST_REDIS=sentinel $(PY) -m pytest -q

lint: venv
	cargo fmt --check
	PYO3_PYTHON=$(abspath $(PY)) cargo clippy --all-targets -- -D warnings
	$(VENV)/bin/ruff check python tests examples benches scripts
	$(VENV)/bin/ruff format --check python tests examples benches scripts
	$(VENV)/bin/mypy

# The package as users get it: the abi3 wheel and the sdist built with maturin, installed
# into fresh venvs (one per CPython 3.10-3.13 found; a missing one is skipped with a
# message) and tested from a copy of tests/ outside the source tree (scripts/wheel_test.py).
# WHEEL_TEST_ARGS="--sdist-subset" runs a subset on the sdist's build (.ci/run); "--full 3.13"
# the whole suite on 3.13 only.
WHEEL_TEST_ARGS ?=
wheel-test: redis venv
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH \
		$(PY) scripts/wheel_test.py $(WHEEL_TEST_ARGS)

# `cargo check` and clippy (-D warnings) of the native core for the other targets of
# .github/workflows/wheels.yml, compiled but not linked; PyO3 needs no Python of the target
# for an abi3-py310 build. A target is skipped with a message when its Rust standard
# library or the C compiler of ring's build script is missing (see `need` below; macOS
# takes zig cc through scripts/zig-cc). musl links the C runtime dynamically, as maturin
# does for it: a static one allows no cdylib. Windows is left out: the native core is
# POSIX-only. Not in .ci/run: it needs those toolchains, downloaded by hand.
CROSS_TARGETS := aarch64-unknown-linux-gnu x86_64-unknown-linux-musl x86_64-apple-darwin aarch64-apple-darwin
cross-check: venv
	@installed="$$(rustup target list --installed)"; for t in $(CROSS_TARGETS); do \
		case $$t in \
			aarch64-*-linux-gnu) have="command -v aarch64-linux-gnu-gcc" need="apt-get install gcc-aarch64-linux-gnu" ;; \
			*-musl) have="command -v musl-gcc" need="apt-get install musl-tools"; \
				export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C target-feature=-crt-static" ;; \
			*-apple-darwin) have="$(PY) -m ziglang version" need=".venv/bin/pip install ziglang"; \
				export ZIG_PYTHON=$(abspath $(PY)) "CC_$$(echo $$t | tr - _)=$(abspath scripts/zig-cc) $${t%%-*}-macos" ;; \
		esac; \
		if ! echo "$$installed" | grep -qx $$t; then echo "cross-check: $$t skipped: needs rustup target add $$t"; \
		elif ! $$have >/dev/null 2>&1; then echo "cross-check: $$t skipped: needs $$need"; \
		else echo "cross-check: $$t" && cargo check --release --target $$t --target-dir target-cross && \
			cargo clippy --release --all-targets --target $$t --target-dir target-cross -- -D warnings || exit 1; fi; \
	done

# The documentation site (mkdocs + Material + mkdocstrings, mkdocs.yml) into site/, strictly:
# a broken link or any warning fails. Its packages are the `docs` extra of pyproject.toml.
DOCS_STAMP := $(VENV)/.docs-stamp
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PY) -c "import sys; t = __import__('tomllib' if sys.version_info >= (3, 11) else 'tomli'); print('\n'.join(t.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['docs']))" > $(VENV)/docs-requirements.txt
	$(PY) -m pip install -q -r $(VENV)/docs-requirements.txt
	touch $@

# The fault-injection suite on a longer run (a million jobs through the memory test).
soak: redis build
	JOBQUEUE_SOAK_JOBS=1000000 $(PY) -m pytest -q -s --timeout 3600 tests/reliability

bench: redis build bench-peers
	$(PY) benches/enqueue.py
	$(PY) benches/drain.py
	$(PY) benches/latency.py
	$(PY) benches/throughput.py
	$(PY) benches/memory.py --peers
	@if command -v valgrind >/dev/null; then $(PY) benches/redis_cost.py; \
	else echo "benches/redis_cost.py skipped: it needs valgrind (apt-get install valgrind)"; fi
	cargo bench --bench native

# The peer libraries of benches/throughput.py. The `bench` extra of pyproject.toml goes into
# .venv; arq (redis-py < 6, which the others do not accept), bullmq (it pins croniter 2,
# which breaks the scheduler's tests in .venv) and ardiq (Python >= 3.12) get venvs of
# their own under .venv/bench-peers/, which throughput.py finds by name. Without a
# Python >= 3.12 on the machine (PATH or pyenv), ardiq is left out and reported as skipped.
PEER_VENVS := $(VENV)/bench-peers
BENCH_STAMP := $(VENV)/.bench-stamp
ARQ_PIN := arq==0.28.0
BULLMQ_PIN := bullmq==3.4.4
ARDIQ_PIN := ardiq==1.2.0
PY312 = $(shell for p in python3.13 python3.12 $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; done)

bench-peers: $(BENCH_STAMP)

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -c "import sys; t = __import__('tomllib' if sys.version_info >= (3, 11) else 'tomli'); print('\n'.join(t.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['bench']))" > $(VENV)/bench-requirements.txt
	$(PY) -m pip install -q -r $(VENV)/bench-requirements.txt
	rm -rf $(PEER_VENVS)/arq $(PEER_VENVS)/bullmq $(PEER_VENVS)/ardiq
	python3 -m venv $(PEER_VENVS)/arq
	$(PEER_VENVS)/arq/bin/python -m pip install -q $(ARQ_PIN)
	python3 -m venv $(PEER_VENVS)/bullmq
	$(PEER_VENVS)/bullmq/bin/python -m pip install -q $(BULLMQ_PIN)
	@py312="$(PY312)"; if [ -n "$$py312" ]; then \
		echo "$$py312 -m venv $(PEER_VENVS)/ardiq" && $$py312 -m venv $(PEER_VENVS)/ardiq && \
		$(PEER_VENVS)/ardiq/bin/python -m pip install -q $(ARDIQ_PIN); \
	else echo "no Python >= 3.12 found: ardiq will be skipped"; fi
	touch $@

build: venv
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH \
		$(VENV)/bin/maturin develop --release

venv: $(STAMP)

# Dependencies are read from pyproject.toml (runtime + dev and test extras), so they live in one place.
# Debian's python3 makes venvs only with python3-venv installed; Python 3.10 has no tomllib.
$(STAMP): pyproject.toml
	$(PY) -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV); python3 -m venv $(VENV); } || \
		{ rm -rf $(VENV); $(SUDO) apt-get update && $(SUDO) apt-get install -y python3-venv && \
		python3 -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import tomllib" 2>/dev/null || $(PY) -m pip install -q tomli
	$(PY) -c "import sys; t = __import__('tomllib' if sys.version_info >= (3, 11) else 'tomli'); p = t.load(open('pyproject.toml', 'rb'))['project']; e = p['optional-dependencies']; print('\n'.join(sorted(set(p['dependencies'] + e['dev'] + e['test']))))" > $(VENV)/requirements.txt
	$(PY) -m pip install -q -r $(VENV)/requirements.txt
	touch $(STAMP)

redis:
	@command -v redis-server >/dev/null || ($(SUDO) apt-get update && $(SUDO) apt-get install -y redis-server)

# The dashboard's browser tests drive Debian's Chromium through Playwright, which downloads
# no browser of its own here (`playwright install` is never run).
chromium:
	@command -v chromium >/dev/null || \
		($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium)

clean:
	rm -rf $(VENV) target target-cross site python/jobqueue/*.so
