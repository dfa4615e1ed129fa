"""Logging set-up shared by the Snakemake scripts: one log file per job; warnings on stderr."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_file: str | Path | None = None, level: int = logging.INFO) -> logging.Logger:
    """Send eopack's records to ``log_file`` (Snakemake's ``log:``), and its warnings to stderr.

    With a log file, stderr (the console of a local run) gets warnings only: the job's
    progress is in its log, and an error is printed once, by :func:`eopack.jobs.run_job`'s exit
    line. Without one, every record goes to stderr.
    """
    root = logging.getLogger("eopack")
    root.setLevel(level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter = logging.Formatter(FORMAT, datefmt="%Y-%m-%dT%H:%M:%S")
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter)
    if log_file is not None:
        stream.addFilter(lambda record: record.levelno == logging.WARNING)
    root.addHandler(stream)
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, mode="w", encoding="utf-8")
        file_handler.setFormatter(formatter)
        root.addHandler(file_handler)
    # boto's own chatter (and anything that could echo credentials) stays out of our logs.
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return root
