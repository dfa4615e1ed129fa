"""The single-node SLURM harness (eopack.demo.slurm): its config, and real daemons that run
jobs, cancel them and leave nothing behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from eopack.demo.slurm import (
    SlurmCluster,
    SlurmUnavailable,
    missing_requirements,
    node_size,
    slurm_conf,
)

NOT_ROOT = (
    "SLURM HARNESS NOT TESTED: a single-node SLURM needs root (slurmd); "
    "run `make test` as root (CI does) to test it"
)


def conf_keys(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_conf_keeps_every_file_under_its_folder(tmp_path):
    keys = conf_keys(slurm_conf(tmp_path, cpus=2, memory_mb=4000, ctld_port=7001, slurmd_port=7002))
    for key in ("StateSaveLocation", "SlurmdSpoolDir", "SlurmctldPidFile", "SlurmdLogFile"):
        assert keys[key].startswith(str(tmp_path)), key
    assert keys["AuthInfo"] == f"socket={tmp_path / 'run' / 'munge.socket'}"
    assert (keys["SlurmctldPort"], keys["SlurmdPort"]) == ("7001", "7002")
    assert keys["NodeName"].endswith("CPUs=2 RealMemory=4000 State=UNKNOWN")
    # The plugin's squeue status queries need finished jobs kept >= 3 x its first interval.
    assert int(keys["MinJobAge"]) >= 120
    assert keys["AccountingStorageType"] == "accounting_storage/none"


def test_node_size_leaves_headroom():
    cpus, memory_mb = node_size(headroom_mb=1024)
    assert cpus == len(os.sched_getaffinity(0))
    available = next(
        int(line.split()[1]) // 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemAvailable:")
    )
    assert 0 < memory_mb <= available - 1024 + 64  # memory moves a little between the reads


def test_too_little_memory_is_one_clear_line():
    with pytest.raises(SlurmUnavailable, match=r"^only \d+ MB of memory available for SLURM$"):
        node_size(headroom_mb=10**9)


@pytest.mark.skipif(os.geteuid() == 0, reason="checks what a non-root user is told")
def test_not_root_is_told_why():
    assert "needs root" in str(missing_requirements())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip(NOT_ROOT)
    with SlurmCluster(tmp_path_factory.mktemp("slurm")) as started:
        yield started


def wait_for(cluster: SlurmCluster, job_id: str, states: set[str], timeout_s: float = 60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = {job.job_id: job.state for job in cluster.jobs()}.get(job_id)
        if state in states:
            return state
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not {states} after {timeout_s} s: {cluster.jobs()}")


def test_cluster_is_up_with_the_node_idle(cluster):
    assert set(cluster.pids) == {"munged", "slurmctld", "slurmd"}
    assert cluster.node_state() == "idle"
    assert cluster.env() == {"SLURM_CONF": str(cluster.conf_path)}
    assert not Path("/etc/slurm/slurm.conf").exists()  # nothing written outside its folder


def test_job_runs_and_its_srun_finds_the_config_without_slurm_conf(cluster, tmp_path):
    """A job's Snakemake (slurm-jobstep) drops SLURM_CONF before its srun: the node's config
    must be where a compute node has it."""
    out = tmp_path / "job.out"
    script = (
        "unset SLURM_CONF; srun -n1 sh -c 'echo step on $(hostname)'; cat /etc/slurm/slurm.conf"
    )
    proc = cluster.run("sbatch", "--parsable", "-o", str(out), "--wrap", script)
    job_id = proc.stdout.strip()
    assert wait_for(cluster, job_id, {"COMPLETED", "FAILED"}) == "COMPLETED", out.read_text()
    text = out.read_text()
    assert "step on " in text
    assert f"AuthInfo=socket={cluster.root / 'run' / 'munge.socket'}" in text


def test_cancelled_job_is_listed_as_cancelled(cluster):
    job_id = cluster.run("sbatch", "--parsable", "--wrap", "sleep 300").stdout.strip()
    wait_for(cluster, job_id, {"RUNNING"})
    cluster.run("scancel", job_id)
    assert wait_for(cluster, job_id, {"CANCELLED"}) == "CANCELLED"


def test_stop_cancels_jobs_ends_the_daemons_and_removes_the_config(tmp_path):
    if os.geteuid() != 0:
        pytest.skip(NOT_ROOT)
    cluster = SlurmCluster(tmp_path / "own").start()
    pids = dict(cluster.pids)
    job_id = cluster.run("sbatch", "--parsable", "--wrap", "sleep 300").stdout.strip()
    wait_for(cluster, job_id, {"RUNNING"})
    cluster.stop()
    for name, pid in pids.items():
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), name
    assert not cluster.conf_path.exists()
    assert not (cluster.root / "run" / "munge.key").exists()
    assert cluster.pids == {}
    leftover = [
        pid
        for pid in os.listdir("/proc")
        if pid.isdigit() and "sleep 300" in _cmdline(pid) and str(tmp_path) in _environ(pid)
    ]
    assert not leftover  # the job's processes went with it


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _environ(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_a_daemon_that_cannot_start_is_one_clear_line(tmp_path):
    if os.geteuid() != 0:
        pytest.skip(NOT_ROOT)
    # A node that claims more memory than the machine has: slurmctld does not take it.
    cluster = SlurmCluster(tmp_path / "bad", memory_mb=10**8)
    with pytest.raises(SlurmUnavailable, match=r"^the node is not usable \(node inval: Low Real"):
        cluster.start()
    assert cluster.pids == {}
    assert not cluster.conf_path.exists()
