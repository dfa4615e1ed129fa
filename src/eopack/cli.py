"""``eopack`` command line: the offline demo, its servers for hands-on use, and the BigEarthNet
download cache (list, prune)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from eopack.errors import EopackError


def _snakemake_cmd(args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(args.cores)]
    cmd += ["--configfile", args.configfile, *args.snakemake_args]
    return cmd


def demo(args: argparse.Namespace) -> int:
    """Start the demo world, run the workflow against it, print where results are."""
    from eopack.demo.world import DemoWorld

    with DemoWorld(args.state_dir) as world:
        env = {**os.environ, **world.env()}
        env.pop("AWS_PROFILE", None)
        stac = world.env()["EOPACK_STAC_URL"]
        print(f"eopack demo: local S3 {world.s3.endpoint_url}, STAC API {stac}")
        _unlock_if_stale(args, env)
        snakemake = subprocess.Popen(_snakemake_cmd(args), env=env)
        try:
            code = snakemake.wait()
        except BaseException as stopped:
            # Stopped: Snakemake first, so that it ends its jobs and removes its lock, then
            # the servers as the block ends. Ctrl-C reached Snakemake too (same terminal);
            # a SIGTERM of this process alone is passed on.
            if isinstance(stopped, SystemExit) and snakemake.poll() is None:
                snakemake.send_signal(signal.SIGTERM)
            try:
                snakemake.wait(timeout=60)
            except subprocess.TimeoutExpired:
                snakemake.kill()
                snakemake.wait()
            raise
    if code == 0:
        results = Path("results").resolve()
        print(f"eopack demo: results in {results}")
        for sub in ("search", "safe", "zip", "bigearthnet", "publish"):
            if (results / sub).exists():
                count = sum(1 for _ in (results / sub).iterdir())
                print(f"  {results / sub}  ({count} entries)")
        if (results / "report").exists():
            print(
                "eopack demo: the report: .venv/bin/snakemake --configfile "
                f"{args.configfile} --report report.html"
            )
    return code


def _unlock_if_stale(args: argparse.Namespace, env: dict[str, str]) -> None:
    """A lock left by a killed run (eopack.locks) is removed, with one line saying so, so that
    ``make demo`` resumes after a ``kill -9``; a lock of a run still working here is kept."""
    from eopack.locks import has_lock, snakemake_processes_in

    if not has_lock(".") or snakemake_processes_in("."):
        return
    cmd = [sys.executable, "-m", "snakemake", "--unlock", "--configfile", args.configfile]
    if subprocess.call(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0:
        print(
            "eopack demo: removed the lock of an earlier run that was killed "
            "(no Snakemake works here any more)"
        )


def serve(args: argparse.Namespace) -> int:
    """Keep the demo servers up and print the environment to use them from another shell."""
    from eopack.demo.world import DemoWorld

    with DemoWorld(args.state_dir) as world:
        for key, value in world.env().items():
            print(f"export {key}={value}")
        sys.stdout.flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


def _stop_on_sigterm() -> None:
    """SIGTERM (``kill``, a service manager, a container stop) ends the command as Ctrl-C
    does: the ``with DemoWorld`` blocks stop the servers (rustac, moto) instead of leaving them
    running without their parent."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def bigearthnet_cache(args: argparse.Namespace) -> int:
    """List or prune the BigEarthNet download cache (eopack.bigearthnet.cache)."""
    from eopack.bigearthnet.cache import cache_items, cache_root, human_size, prune

    resources = Path(args.resources)
    if not cache_root(resources).is_dir():
        print(f"eopack: {cache_root(resources)}: no cache there (nothing fetched yet?)")
        return 0
    if args.action == "list":
        items = cache_items(resources)
    else:
        items = prune(resources, extracted=args.extracted, dry_run=args.dry_run)
    for item in items:
        use = "in use" if item.in_use else "unused"
        print(f"{item.kind:9}  {human_size(item.size):>9}  {use:6}  {item.path}")
    total = human_size(sum(item.size for item in items))
    if args.action == "list":
        print(f"eopack: {len(items)} items, {total} in {cache_root(resources)}")
    else:
        verb = "would remove" if args.dry_run else "removed"
        print(f"eopack: {verb} {len(items)} items, {total}")
    return 0


def main(argv: list[str] | None = None) -> int:
    _stop_on_sigterm()
    parser = argparse.ArgumentParser(prog="eopack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="run the workflow on the offline demo world")
    p_demo.add_argument("--cores", default="2")
    p_demo.add_argument("--configfile", default="config/demo.yaml")
    p_demo.add_argument("--state-dir", default=".demo")
    p_demo.add_argument("snakemake_args", nargs=argparse.REMAINDER)
    p_demo.set_defaults(func=demo)
    p_serve = sub.add_parser("serve-demo", help="start the demo servers and wait")
    p_serve.add_argument("--state-dir", default=".demo")
    p_serve.set_defaults(func=serve)
    p_cache = sub.add_parser(
        "bigearthnet-cache",
        help="list or prune the BigEarthNet download cache (resources/bigearthnet/cache)",
    )
    p_cache.add_argument("action", choices=["list", "prune"])
    p_cache.add_argument("--resources", default="resources/bigearthnet")
    p_cache.add_argument(
        "--extracted",
        action="store_true",
        help="prune: remove every extracted tree, also those in use (re-extracted when needed)",
    )
    p_cache.add_argument("--dry-run", action="store_true", help="prune: only list")
    p_cache.set_defaults(func=bigearthnet_cache)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except EopackError as err:
        print(f"eopack: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
