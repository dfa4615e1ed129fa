# eopack for AWS Batch: the image the job definition points at (profiles/aws-batch; README,
# "Profiles -> AWS Batch"). Every job runs `python -m snakemake --snakefile Snakefile ...` in
# WORKDIR, so the image holds the workflow as checked out here, with your config and AOIs:
# build it from the checkout you run Snakemake in, and rebuild it when they change.
#   docker build -t eopack .
# Dependencies are installed from requirements.lock.txt only (exact versions, hashes checked;
# `make lock` regenerates it from pyproject.toml). LOCK_PYTHON in the Makefile is this Python.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /eopack

# The pinned dependencies first: this layer is rebuilt only when the lock file changes.
COPY requirements.lock.txt ./
RUN pip install --require-hashes --no-deps -r requirements.lock.txt

# Then eopack itself, built with the locked setuptools and nothing else from the index.
COPY . .
RUN pip install --no-deps --no-build-isolation . \
    && pip check

# Jobs need no root: an unprivileged user that owns WORKDIR (Snakemake writes .snakemake/ there).
RUN useradd --create-home --uid 1000 eopack && chown -R eopack /eopack
USER eopack
