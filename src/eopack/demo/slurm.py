"""A real single-node SLURM cluster on this machine (munged, slurmctld, slurmd), for the tests.

Why real daemons: what decides whether a workflow works on a cluster is the executor plugin
talking to SLURM (sbatch, its status queries, scancel, its per-job logs), and a mock of those
proves nothing. Debian's ``slurmctld slurmd slurm-client munge`` install in seconds and run
one node without systemd, as root, with every file in one scratch folder:

* no ``/etc/slurm/slurm.conf`` is written: clients find the cluster through ``SLURM_CONF``
  (:meth:`SlurmCluster.env`), and slurmd and its jobs, in a mount namespace of their own, see
  the config at /etc/slurm as a compute node does (:data:`NODE_CONFIG` says why). A slurm.conf
  left behind without a controller costs every later Snakemake start ~9 s;
* munged gets its own key and socket (``AuthInfo=socket=...``) and the daemons their own free
  loopback ports, so the cluster meets no other SLURM or munge on the machine;
* ``MinJobAge=3600``: squeue keeps finished jobs that long. Without accounting, sacct has
  nothing, and the plugin's squeue status queries need the finished jobs to see them end;
* teardown cancels the cluster's jobs, stops the daemons by PID and removes the config.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Self

from eopack.demo.service import Service
from eopack.errors import EopackError

#: Debian packages that bring the daemons and client commands (Makefile ``system-deps``).
DEB_PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
COMMANDS = (
    "unshare",
    "mount",
    "munged",
    "slurmctld",
    "slurmd",
    "sbatch",
    "squeue",
    "sinfo",
    "scancel",
    "scontrol",
)
#: Memory left to everything else on the machine (the submit host runs Snakemake too).
HEADROOM_MB = 2048
#: Memory per CPU for a job that asks for none (a job asking for nothing would get the node).
DEF_MEM_PER_CPU_MB = 1000
#: squeue states of jobs that are not over yet.
ACTIVE_STATES = "PENDING,RUNNING,SUSPENDED,COMPLETING,CONFIGURING,REQUEUED,RESIZING,SIGNALING"


#: How slurmd starts (``sh -c NODE_CONFIG slurmd ETC_DIR ARGV...``): the folder holding
#: slurm.conf is mounted on /etc/slurm first. Why: a job's Snakemake (the slurm-jobstep
#: executor) drops every ``SLURM_*`` variable, ``SLURM_CONF`` included, before it runs the job
#: with ``srun``; srun then reads /etc/slurm/slurm.conf, as on a real cluster's compute nodes.
#: A mount namespace keeps that file out of the rest of the machine: a slurm.conf whose
#: controller is gone would cost every later Snakemake start ~9 s, and two test clusters
#: would see each other's.
NODE_CONFIG = 'mount --bind "$1" /etc/slurm && shift && exec "$@"'


class SlurmUnavailable(EopackError):
    """This machine cannot run the cluster (not root, or the Debian packages are missing)."""


@dataclass(frozen=True)
class SlurmJob:
    """One job as squeue lists it (``--states=all``: finished jobs too, for ``MinJobAge``)."""

    job_id: str
    name: str
    comment: str
    state: str


def missing_requirements() -> str | None:
    """Why this machine cannot run the cluster, or None when it can."""
    if os.geteuid() != 0:
        return "a single-node SLURM needs root (slurmd runs jobs as their users)"
    missing = [cmd for cmd in COMMANDS if shutil.which(cmd) is None]
    if not os.path.isdir("/etc/slurm"):  # slurm-client's; the node's config is mounted there
        missing.append("/etc/slurm")
    if missing:
        return (
            f"SLURM commands missing: {' '.join(missing)} "
            f"(apt-get install {' '.join(DEB_PACKAGES)}, or `make system-deps` as root)"
        )
    return None


def node_size(headroom_mb: int = HEADROOM_MB) -> tuple[int, int]:
    """``(cpus, memory_mb)`` for the node: the CPUs this process may use (``nproc``) and the
    available memory less ``headroom_mb``. slurmd refuses a node that claims more memory
    than it has, and the machine is shared, so available rather than total memory."""
    cpus = len(os.sched_getaffinity(0))
    available_kb = 0
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                available_kb = int(line.split()[1])
    memory_mb = available_kb // 1024 - headroom_mb
    if memory_mb < 512:
        raise SlurmUnavailable(f"only {available_kb // 1024} MB of memory available for SLURM")
    return cpus, memory_mb


def free_port() -> int:
    """A loopback TCP port that nothing listens on now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def slurm_conf(
    root: Path,
    cpus: int,
    memory_mb: int,
    ctld_port: int,
    slurmd_port: int,
    cluster_name: str = "eopack",
) -> str:
    """The slurm.conf of a one-node cluster whose every file lives under ``root``."""
    return f"""\
# Written by eopack.demo.slurm: a single-node test cluster; removed when it stops.
ClusterName={cluster_name}
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root / "run" / "munge.socket"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
# squeue keeps finished jobs this long: the plugin's squeue status queries need >= 120 s, and
# tests read the records of a whole session's runs.
MinJobAge=3600
ReturnToService=2
# scancel: SIGKILL 2 s after SIGTERM (default 30 s).
KillWait=2
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,default_queue_depth=100
DefMemPerCPU={DEF_MEM_PER_CPU_MB}
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "run" / "slurmctld.pid"}
SlurmdPidFile={root / "run" / "slurmd.pid"}
SlurmctldLogFile={root / "log" / "slurmctld.log"}
SlurmdLogFile={root / "log" / "slurmd.log"}
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


class SlurmCluster(Service):
    """munged, slurmctld and slurmd for one node, all files under ``root``.

    ``with SlurmCluster(tmp) as cluster:`` starts the daemons and returns once the node is idle;
    ``cluster.env()`` is what a client (Snakemake, sbatch) needs in its environment. ``cpus``
    and ``memory_mb`` default to :func:`node_size`.
    """

    def __init__(
        self,
        root: str | Path,
        cpus: int | None = None,
        memory_mb: int | None = None,
        start_timeout_s: float = 30.0,
    ) -> None:
        self.root = Path(root).resolve()
        self._cpus = cpus
        self._memory_mb = memory_mb
        self.start_timeout_s = start_timeout_s
        self.cpus = 0
        self.memory_mb = 0
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []

    @property
    def conf_path(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def pids(self) -> dict[str, int]:
        """Daemon name -> PID, for the daemons this cluster started and that still run."""
        return {name: p.pid for name, p in self._procs.items() if p.poll() is None}

    def env(self) -> dict[str, str]:
        """Environment for SLURM clients: the cluster's config (no /etc/slurm/slurm.conf)."""
        return {"SLURM_CONF": str(self.conf_path)}

    # --- start ---------------------------------------------------------------------------

    def start(self) -> Self:
        problem = missing_requirements()
        if problem:
            raise SlurmUnavailable(problem)
        cpus, memory_mb = node_size()
        self.cpus = self._cpus or cpus
        self.memory_mb = self._memory_mb or memory_mb
        for sub in ("etc", "state", "spool", "log", "run"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        key = self.root / "run" / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        tmp = self.conf_path.with_suffix(".conf.tmp")
        tmp.write_text(
            slurm_conf(self.root, self.cpus, self.memory_mb, free_port(), free_port()),
            encoding="utf-8",
        )
        tmp.replace(self.conf_path)
        try:
            run = self.root / "run"
            # --force: munged refuses a socket below a folder others cannot enter (pytest's
            # tmp_path is under a 0700 folder); every client here runs as root anyway.
            self._spawn(
                "munged",
                "munged",
                "--foreground",
                "--force",
                f"--socket={run / 'munge.socket'}",
                f"--key-file={key}",
                f"--pid-file={run / 'munged.pid'}",
                f"--seed-file={run / 'munged.seed'}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
            )
            self._wait(lambda: (run / "munge.socket").exists(), "munged's socket")
            self._spawn("slurmctld", "slurmctld", "-D", "-c", "-f", str(self.conf_path))
            self._wait(lambda: self._query("sinfo", "-h") is not None, "slurmctld to answer")
            # The node sees the config where a compute node has it: /etc/slurm (see
            # NODE_CONFIG), in a mount namespace of its own that only slurmd and its jobs see.
            self._spawn(
                "slurmd",
                "unshare",
                "--mount",
                "--propagation=private",
                "sh",
                "-c",
                NODE_CONFIG,
                "slurmd",
                str(self.root / "etc"),
                "slurmd",
                "-D",
                "-N",
                "localhost",
                "-f",
                str(self.conf_path),
            )
            self._wait(self._node_ready, "the node to be idle", self._node)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, *argv: str) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")  # noqa: SIM115 (closed in stop)
        self._logs.append(log)
        self._procs[name] = subprocess.Popen(
            argv,
            cwd=self.root,
            env={**os.environ, **self.env()},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C meant for the tests does not reach the daemons
        )

    def _wait(
        self, ready: Callable[[], bool], what: str, detail: Callable[[], str] | None = None
    ) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise SlurmUnavailable(
                        f"{name} exited with {proc.returncode} while waiting for {what}: "
                        f"{self._tail(name)}"
                    )
            if ready():
                return
            time.sleep(0.2)
        seen = f" ({detail()})" if detail else ""
        raise SlurmUnavailable(
            f"timed out after {self.start_timeout_s:.0f} s waiting for {what}{seen}"
        )

    def _node_ready(self) -> bool:
        """Idle: ready. Invalid or drained (e.g. more memory configured than there is): it
        will not get better, so say why now rather than at the timeout."""
        state = self.node_state()
        if state.startswith(("inval", "drain")):
            raise SlurmUnavailable(f"the node is not usable ({self._node()})")
        return state == "idle"

    def _node(self) -> str:
        """The node's state and, when SLURM gives one, the reason (e.g. "Low RealMemory")."""
        out = self._query("sinfo", "-h", "-N", "-o", "%T|%E") or "|"
        state, _, reason = out.strip().partition("|")
        return f"node {state or 'unknown'}" + (f": {reason}" if reason and reason != "none" else "")

    def _tail(self, name: str) -> str:
        lines: list[str] = []
        for path in (self.root / "log" / f"{name}.out", self.root / "log" / f"{name}.log"):
            if path.exists():
                lines += path.read_text(errors="replace").splitlines()
        return " | ".join(lines[-3:]) or "(no log)"

    # --- queries -------------------------------------------------------------------------

    def _query(self, *argv: str) -> str | None:
        """A client command's stdout, or None when it fails (e.g. no controller yet)."""
        proc = subprocess.run(
            argv,
            env={**os.environ, **self.env()},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return proc.stdout if proc.returncode == 0 else None

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run a SLURM client command (sbatch, scancel...) against this cluster; raises on
        failure with the command's stderr. In the cluster's folder, where a job without
        ``-o`` leaves its ``slurm-<id>.out``."""
        return subprocess.run(
            argv,
            cwd=self.root,
            env={**os.environ, **self.env()},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )

    def node_state(self) -> str:
        """The node's state as sinfo says it (``idle``, ``mixed``, ``allocated``...)."""
        out = self._query("sinfo", "-h", "-N", "-o", "%T")
        return (out or "").strip()

    def jobs(self, states: str = "all") -> list[SlurmJob]:
        """The cluster's jobs (finished ones too, for ``MinJobAge`` seconds)."""
        out = self._query("squeue", "-h", f"--states={states}", "-o", "%i|%j|%k|%T")
        if out is None:
            return []
        jobs = []
        for line in out.splitlines():
            job_id, name, comment, state = line.split("|", 3)
            jobs.append(SlurmJob(job_id, name, comment, state))
        return jobs

    # --- stop ----------------------------------------------------------------------------

    def cancel_all(self, timeout_s: float = 15.0) -> None:
        """Cancel every job still pending or running and wait until none is left."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            active = [job.job_id for job in self.jobs(ACTIVE_STATES)]
            if not active:
                return
            self._query("scancel", *active)
            time.sleep(0.3)

    def stop(self) -> None:
        if self._procs.get("slurmctld") is not None and self._procs["slurmctld"].poll() is None:
            self.cancel_all()
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._procs.pop(name, None)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        for log in self._logs:
            log.close()
        self._logs.clear()
        for path in (self.conf_path, self.root / "run" / "munge.key"):
            path.unlink(missing_ok=True)


def main() -> None:
    """``python -m eopack.demo.slurm [FOLDER]``: a cluster to try the profiles by hand."""
    import sys
    import tempfile

    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="slurm-"))
    try:
        with SlurmCluster(root) as cluster:
            print(f"export SLURM_CONF={cluster.conf_path}", flush=True)
            print(f"# {cluster.cpus} CPUs, {cluster.memory_mb} MB; Ctrl-C stops it", flush=True)
            signal.pause()
    except KeyboardInterrupt:  # whenever it comes: the cluster has been stopped on the way out
        pass
    except SlurmUnavailable as err:
        sys.exit(f"eopack: {err}")


if __name__ == "__main__":
    main()
