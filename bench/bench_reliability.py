"""Reliability figures (docs/reliability.md): the demo workflow killed and resumed at many
seeded moments, and run through a faulty S3 with several seeds, against an uninterrupted run.

    python bench/bench_reliability.py [--kill-points 30] [--fault-seeds 3] [--fault-rate 0.25]

``make test`` runs the light variants (tests/test_kill_resume.py: 10 points;
tests/test_faults.py: one seed). Each run here is a copy of the workflow on one demo world (a
real moto S3 server and rustac STAC server on loopback); results are compared file by file by
SHA-256 (``results/publish/urls.tsv`` aside: its URLs carry their signing time).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import copy_workflow_files

from eopack.demo.faults import Faults
from eopack.demo.killchain import count_files, kill_and_resume, result_hashes
from eopack.demo.world import PUBLISH_BUCKET, DemoWorld

ARGS = ("--cores", "2", "--configfile", "config/demo.yaml")
MAX_RUNS = 4


def _env(world: DemoWorld) -> dict[str, str]:
    env = {**os.environ, **world.env()}
    env.pop("AWS_PROFILE", None)
    return env


def _run(workdir: Path, env: dict[str, str], *extra: str) -> int:
    with open(workdir / "console.log", "ab") as out:
        return subprocess.run(
            [sys.executable, "-m", "snakemake", *ARGS, *extra],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        ).returncode


def _differ(got: dict[str, str], want: dict[str, str], skip: str = "\0") -> list[str]:
    names = {n for n in got.keys() | want.keys() if not n.startswith(skip)}
    return sorted(n for n in names if got.get(n) != want.get(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kill-points", type=int, default=30)
    parser.add_argument("--kill-seed", type=int, default=16)
    parser.add_argument("--fault-seeds", type=int, default=3)
    parser.add_argument("--fault-rate", type=float, default=0.25)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-reliability-"))
    figures: dict[str, object] = {}
    with DemoWorld(root / "world") as world:
        env = _env(world)
        reference = copy_workflow_files(root / "reference")
        started = time.monotonic()
        assert _run(reference, env) == 0, f"the uninterrupted run failed: {reference}"
        figures["uninterrupted_s"] = round(time.monotonic() - started, 1)
        want = result_hashes(reference)
        print(f"uninterrupted: {len(want)} files in {figures['uninterrupted_s']} s", flush=True)

        workdir = copy_workflow_files(root / "killed")
        chain = kill_and_resume(
            workdir,
            ARGS,
            env,
            points=args.kill_points,
            finished_files=count_files(reference / "results"),
            seed=args.kill_seed,
            log=workdir / "console.log",
            timeout_s=3600,
        )
        differ = _differ(result_hashes(workdir), want)
        figures["kill"] = {
            "points": len(chain.killed_at),
            "seed": args.kill_seed,
            "runs": chain.runs,
            "seconds": round(chain.seconds, 1),
            "files": len(want),
            "differ": differ,
        }
        print(f"kill: {len(chain.killed_at)} points, {chain.runs} runs; differ: {differ}")

        faults_rows = []
        for seed in range(1, args.fault_seeds + 1):
            workdir = copy_workflow_files(root / f"faults-{seed}")
            faults = Faults(args.fault_rate, seed)
            remove = world.s3.add_hook(faults)
            publish = f"publish={{uri: s3://{PUBLISH_BUCKET}/bench-faults-{seed}}}"
            runs = []
            try:
                for _ in range(MAX_RUNS):
                    runs.append(_run(workdir, env, "--config", publish))
                    if runs[-1] == 0:
                        break
            finally:
                remove()
            differ = _differ(result_hashes(workdir), want, skip="results/publish/")
            row = {
                "seed": seed,
                "requests": faults.requests,
                "faults": faults.total,
                "by_kind": dict(faults.injected),
                "runs": runs,
                "differ": differ,
            }
            faults_rows.append(row)
            print(f"faults: {row}", flush=True)
        figures["faults"] = faults_rows
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
