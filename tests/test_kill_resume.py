"""A run killed outright at seeded moments and resumed with the README's commands ends with the
same results as an uninterrupted run, byte for byte.

The whole demo workflow (search, SAFE rebuild, verify, zip, publishing, BigEarthNet, the report)
is ``SIGKILL``-ed with its process group at ``POINTS`` moments spread over the run (see
:mod:`eopack.demo.killchain`), resumed each time with ``snakemake --unlock`` and the same
command, then run to the end; every file under ``results/`` is then compared with the shared
uninterrupted run's (``urls.tsv`` aside: its URLs carry their signing time). The heavier variant,
30 points and more, is ``make bench-kill``.
"""

from __future__ import annotations

import os

from conftest import DEMO_ARGS, copy_workflow

from eopack.demo.killchain import count_files, kill_and_resume, result_hashes

POINTS = 10
SEED = 16


def test_killed_and_resumed_run_ends_like_an_uninterrupted_one(world, demo_run, tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    env = {k: v for k, v in {**os.environ, **world.env()}.items() if k != "AWS_PROFILE"}
    chain = kill_and_resume(
        workdir,
        DEMO_ARGS,
        env,
        points=POINTS,
        finished_files=count_files(demo_run.workdir / "results"),
        seed=SEED,
        log=tmp_path / "console.log",
    )
    assert len(chain.killed_at) == POINTS and chain.runs == POINTS + 1
    got = result_hashes(workdir)
    assert sorted(got) == sorted(demo_run.hashes), "files differ from the uninterrupted run's"
    differ = sorted(name for name in got if got[name] != demo_run.hashes[name])
    assert not differ, f"killed at {chain.killed_at} files: these differ: {differ}"
    assert not list(workdir.glob("results/**/.*.part")), "a staging folder was left behind"
