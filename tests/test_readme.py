"""Every command line in README.md is run here, so that the README cannot drift from the program.

The commands are read from the README itself: each line of its ``sh``/``bash`` blocks
(comments dropped, ``\\`` continuations joined) and each command quoted inline in its prose.
Every one must match exactly one entry of :data:`CHECKS`, which says how it is run:

* ``snakemake`` lines run as written in a user's checkout whose ``config/config.yaml`` is the
  demo world's settings (AOIs in ``config/aoi``, the demo S3 and STAC servers on loopback); a
  line that would run jobs gets ``-n`` (a dry run: the DAG, the config checks, the profile and
  its executor plugin, all real). ``--report`` and ``sha256sum -c`` run for real on a
  finished demo run.
* ``make`` targets run as ``make -n`` (the suite itself is ``make test``); pip lines run as
  pip's ``--dry-run --no-index`` against this venv (nothing leaves the machine);
  ``eopack serve-demo`` and ``python -m eopack.demo.slurm`` start and are stopped as the
  README says (Ctrl-C / SIGTERM).
* Lines that need Docker or an AWS account are listed in :data:`NOT_RUN` with the reason;
  the test fails if that list and the README disagree.

A README command that no entry matches fails ``test_every_readme_command_has_a_check``:
adding a command to the README means saying here how it is proven.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
import yaml
from conftest import REPO, copy_workflow, run_snakemake
from snakemake.utils import update_config
from test_storage_s3 import storage_env

from eopack.demo.world import DemoWorld

README = REPO / "README.md"
BIN = Path(sys.executable).parent
#: Buckets the README's examples name; they exist on the demo S3 server for these runs.
README_BUCKETS = ("my-results", "my-bucket")


def readme_commands(text: str) -> list[str]:
    """The README's command lines, in order, each once."""
    found: list[str] = []
    for block in re.findall(r"^ *```(?:sh|bash)\n(.*?)^ *```", text, flags=re.M | re.S):
        block = re.sub(r"\\\n\s*", "", block)  # continuation lines
        pending = ""
        for line in block.splitlines():
            pending = f"{pending} {line.strip()}" if pending else line.strip()
            try:
                shlex.split(pending, comments=True)
            except ValueError:  # a quote still open: the command goes on on the next line
                continue
            command = re.sub(r"(^|\s+)#.*$", "", pending).strip()
            if command:
                found.append(command)
            pending = ""
        assert not pending, f"unclosed quote in a README block: {pending}"
    prose = re.sub(r"^ *```.*?^ *```", "", text, flags=re.M | re.S)
    tools = r"snakemake|make|eopack|python3?|pip|sha256sum|aws|docker|\.venv/bin/[\w-]+"
    inline = rf"`((?:{tools})\s[^`]*)`"
    found += [" ".join(command.split()) for command in re.findall(inline, prose)]
    return list(dict.fromkeys(found))


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))

#: README lines that cannot run here, and why; each is still checked for what can be checked.
NOT_RUN = {
    "docker build -t eopack .": "needs a Docker daemon",
    "aws ecr create-repository --repository-name eopack --region eu-central-1": "an AWS account",
    "docker tag eopack ACCOUNT.dkr.ecr.eu-central-1.amazonaws.com/eopack:v1": "Docker, AWS",
    "docker push ACCOUNT.dkr.ecr.eu-central-1.amazonaws.com/eopack:v1": "Docker, an AWS account",
    "aws batch register-job-definition": "an AWS account",
}


@dataclasses.dataclass
class Checkout:
    """A user's checkout of the workflow, pointed at the demo world."""

    workdir: Path
    env: dict[str, str]
    finished: Path  # another checkout where the whole demo run has finished


def _user_config() -> dict:
    """config/config.yaml as a demo-world user would have it: the defaults with the demo's
    settings merged in (as ``--configfile config/demo.yaml`` does), AOIs in config/aoi."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))
    update_config(config, yaml.safe_load((REPO / "config" / "demo.yaml").read_text("utf-8")))
    config["aoi_dir"] = "config/aoi"
    return config


def _as_user(workdir: Path) -> Path:
    copy_workflow(workdir)
    (workdir / ".venv").symlink_to(REPO / ".venv")
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(_user_config()))
    shutil.rmtree(workdir / "config" / "aoi")
    (workdir / "config" / "aoi").mkdir()
    (workdir / "my-areas").mkdir()
    for aoi in (REPO / "config" / "demo" / "aoi").glob("*.geojson"):
        shutil.copy2(aoi, workdir / "my-areas" / aoi.name)
    return workdir


@pytest.fixture(scope="module")
def checkout(world: DemoWorld, tmp_path_factory: pytest.TempPathFactory) -> Checkout:
    client = world.client()
    for bucket in README_BUCKETS:
        if bucket not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
            client.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
            )
    env = storage_env(world)
    workdir = _as_user(tmp_path_factory.mktemp("readme-user"))
    finished = _as_user(tmp_path_factory.mktemp("readme-finished"))
    shutil.copytree(finished / "my-areas", finished / "config" / "aoi", dirs_exist_ok=True)
    proc = run_snakemake(finished, "--cores", "2", env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return Checkout(workdir, env, finished)


def _shell(command: str, cwd: Path, env: dict[str, str], timeout: int = 300) -> str:
    """Run one README line with bash, as a user would paste it; its output on success."""
    full_env = {**os.environ, **env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    full_env.pop("AWS_PROFILE", None)
    proc = subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


# --- how each kind of line is run ---------------------------------------------------------------


def check_make(command: str, c: Checkout) -> None:
    """`make X [VAR=value]`: the target exists and its recipe expands with those variables
    (the suite itself is `make test`)."""
    words = shlex.split(command)[1:]
    variables = " ".join(shlex.quote(w) for w in words if "=" in w)
    for target in (w for w in words if "=" not in w):
        _shell(f"make -n {target} {variables}".strip(), REPO, {})


def check_venv(command: str, c: Checkout, tmp_path: Path) -> None:
    """The README's pip-only install: a venv, and pip takes the project as an editable install."""
    make_venv, pip_install = command.split(" && ")
    assert make_venv == "python3 -m venv .venv" and pip_install == ".venv/bin/pip install -e ."
    _shell("python3 -m venv --without-pip .venv && test -x .venv/bin/python", tmp_path, {})
    check_pip("pip install -e .", c)


def check_pip(command: str, c: Checkout) -> None:
    """`pip install -e .[extra]`: the project declares the extra, and everything that install
    would bring is in this venv (`make install`), each at a version the project accepts."""
    from importlib.metadata import PackageNotFoundError, metadata, version

    from packaging.requirements import Requirement

    (target,) = shlex.split(command)[3:]
    assert target.startswith("."), "pip installs this checkout, not a package of that name"
    extras = set(re.findall(r"[\w-]+", target.partition("[")[2]))
    meta = metadata("eopack")
    assert extras <= set(meta.get_all("Provides-Extra") or []), extras
    for requirement in map(Requirement, meta.get_all("Requires-Dist") or []):
        wanted = requirement.marker is None or any(
            requirement.marker.evaluate({"extra": extra}) for extra in extras | {""}
        )
        if wanted:
            try:
                assert requirement.specifier.contains(version(requirement.name), True)
            except PackageNotFoundError:
                pytest.fail(f"{command}: {requirement} is not installed by make install")


def check_activate(command: str, c: Checkout) -> None:
    out = _shell(f"{command} && command -v snakemake eopack", REPO, {})
    assert out.split() == [str(REPO / ".venv" / "bin" / n) for n in ("snakemake", "eopack")]


def check_copy_aois(command: str, c: Checkout) -> None:
    _shell(command, c.workdir, {})
    copied = sorted(p.name for p in (c.workdir / "config" / "aoi").glob("*.geojson"))
    assert copied and copied == sorted(p.name for p in (c.workdir / "my-areas").iterdir())


def check_export(command: str, c: Checkout) -> None:
    """`export SNAKEMAKE_STORAGE_S3_*`: each is a setting of the S3 storage plugin."""
    from snakemake_storage_plugin_s3 import StorageProviderSettings

    fields = {f.name.upper() for f in dataclasses.fields(StorageProviderSettings)}
    for name in re.findall(r"(\w+)=", command):
        assert name.startswith("SNAKEMAKE_STORAGE_S3_"), name
        assert name.removeprefix("SNAKEMAKE_STORAGE_S3_") in fields, name


#: Options after which Snakemake runs no job (so the line runs as written).
_RUNS_NO_JOB = ("-n", "--report", "--unlock", "--rulegraph")
#: Options that read a finished run (its records, or the checkpoint's outcome).
_AFTER_A_RUN = ("--report", "--rulegraph")


def check_snakemake(command: str, c: Checkout) -> None:
    """The line in the user's checkout, as a dry run where it would run jobs."""
    args = shlex.split(command.replace("--cores N", "--cores 2"))
    workdir = c.finished if set(args) & set(_AFTER_A_RUN) else c.workdir
    if "config/my.yaml" in args:  # the README's "your own config"
        shutil.copy2(workdir / "config" / "config.yaml", workdir / "config" / "my.yaml")
    if "profiles/aws-batch" in args:  # Batch refuses BigEarthNet (no shared disk): README
        (workdir / "config" / "imagery.yaml").write_text("bigearthnet: {enabled: false}\n")
        args += ["--configfile", "config/imagery.yaml"]
    if not set(args) & set(_RUNS_NO_JOB):
        args.append("-n")
    out = _shell(shlex.join(args), workdir, c.env, timeout=600)
    if "-n" in args:
        assert "This was a dry-run" in out or "Nothing to be done" in out, out[-2000:]
    if "--rulegraph" in args:  # each rule once (the README says so; the report's graph not)
        rules = re.findall(r'label = "(\w+)"', out)
        assert "publish_upload" in rules and len(rules) == len(set(rules)), rules
    if "--report" in args:
        report = workdir / args[args.index("--report") + 1]
        assert report.stat().st_size > 100_000, "the report is too small to hold the figures"
        report.unlink()


def check_sha256sum(command: str, c: Checkout) -> None:
    out = _shell(command, c.finished / "results" / "bigearthnet", {})
    assert out.count(": OK") >= 2 and "FAILED" not in out, out


def check_bigearthnet_cache(command: str, c: Checkout, tmp_path: Path) -> None:
    """Lists or prunes the download cache of a copy of the finished demo's resources/."""
    shutil.copytree(c.finished / "resources", tmp_path / "resources", symlinks=True)
    out = _shell(command, tmp_path, {})
    summary = r"eopack: (\d+ items, .* in \S+|(would remove|removed) \d+ items, .*)"
    assert re.fullmatch(summary, out.strip().splitlines()[-1]), out
    if " list" in command:
        in_use = r"file .* in use +resources/bigearthnet/cache/md5/\w{32}/BigEarthNet-S2"
        assert re.search(in_use, out), out


def check_serve_demo(command: str, c: Checkout, tmp_path: Path) -> None:
    """Starts the demo servers, prints their settings, and stops on SIGTERM (as on Ctrl-C)."""
    proc = subprocess.Popen(
        [str(BIN / "eopack"), *shlex.split(command)[1:], "--state-dir", str(tmp_path / "s")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = [proc.stdout.readline() for _ in range(5)]
        assert any(line.startswith("export EOPACK_STAC_URL=http://127.0.0.1:") for line in first)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def check_slurm_cluster(command: str, c: Checkout, tmp_path: Path) -> None:
    """Starts a single-node SLURM and stops it on Ctrl-C (root only, as make system-deps)."""
    if os.geteuid() != 0 or not Path("/usr/sbin/slurmctld").exists():
        pytest.skip("a SLURM cluster needs root and Debian's slurmctld (make system-deps)")
    proc = subprocess.Popen(
        [sys.executable, *shlex.split(command)[1:], str(tmp_path / "slurm")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("export SLURM_CONF=")
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0


def check_python_m_snakemake(command: str, c: Checkout) -> None:
    out = _shell(f"{command} --version", REPO, {})
    assert re.fullmatch(r"\d+\.\d+\.\d+\s*", out), out


def check_lifecycle(command: str, c: Checkout) -> None:
    """The README's lifecycle rule, put on a bucket of the local S3 server as the AWS CLI
    would (same API call, same document), and read back."""
    args = shlex.split(command)
    bucket = args[args.index("--bucket") + 1]
    document = json.loads(args[args.index("--lifecycle-configuration") + 1])
    client = boto3.client("s3", **_client_settings(c.env))
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=document)
    (rule,) = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}
    client.delete_bucket_lifecycle(Bucket=bucket)


def _client_settings(env: dict[str, str]) -> dict[str, str]:
    return {
        "endpoint_url": env["AWS_ENDPOINT_URL_S3"],
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


def check_not_run(command: str, c: Checkout) -> None:
    """Docker and AWS account lines: what they rely on in this repository exists."""
    assert (REPO / "Dockerfile").is_file()
    assert command in NOT_RUN


Check = Callable[..., None]
CHECKS: list[tuple[str, Check]] = [
    (r'make( [\w-]+)+( [A-Z_]+=("[^"]*"|\S+))*', check_make),
    (r"python3 -m venv \.venv && \.venv/bin/pip install -e \.", check_venv),
    (r"pip install -e \S+", check_pip),
    (r"source \.venv/bin/activate", check_activate),
    (r"cp my-areas/\*\.geojson config/aoi/", check_copy_aois),
    (r"export (SNAKEMAKE_\w+=\S+\s*)+", check_export),
    (r"(\.venv/bin/)?snakemake( .*)?", check_snakemake),
    (r"sha256sum -c SHA256SUMS", check_sha256sum),
    (r"eopack serve-demo", check_serve_demo),
    (r"eopack bigearthnet-cache (list|prune)( --dry-run| --extracted)*", check_bigearthnet_cache),
    (r"python -m eopack\.demo\.slurm", check_slurm_cluster),
    (r"python -m snakemake", check_python_m_snakemake),
    (r"aws s3api put-bucket-lifecycle-configuration .*", check_lifecycle),
    ("|".join(map(re.escape, NOT_RUN)), check_not_run),
]


def check_for(command: str) -> list[Check]:
    return [check for pattern, check in CHECKS if re.fullmatch(pattern, command)]


def test_the_readme_has_its_commands():
    """The parser finds the README's blocks (a format change would otherwise pass silently)."""
    assert "make demo" in COMMANDS and "snakemake --cores 4" in COMMANDS
    assert any(c.startswith("snakemake --workflow-profile profiles/aws-batch") for c in COMMANDS)
    assert len(COMMANDS) >= 30, COMMANDS


def test_every_readme_command_has_a_check():
    unmatched = [c for c in COMMANDS if len(check_for(c)) != 1]
    assert not unmatched, f"README commands with no (or several) checks: {unmatched}"
    assert set(NOT_RUN) <= set(COMMANDS), set(NOT_RUN) - set(COMMANDS)


def _ids() -> Iterator[str]:
    for command in COMMANDS:
        yield re.sub(r"\s+", " ", command)[:80]


@pytest.mark.parametrize("command", COMMANDS, ids=list(_ids()))
def test_readme_command(command: str, checkout: Checkout, tmp_path: Path) -> None:
    (check,) = check_for(command)
    if "tmp_path" in check.__code__.co_varnames[: check.__code__.co_argcount]:
        check(command, checkout, tmp_path)
    else:
        check(command, checkout)
