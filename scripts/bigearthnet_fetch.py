"""Snakemake adapter: one BigEarthNet release archive -> resources/bigearthnet/{archive}.tar.zst.

The source and timeouts come from the config, not from params: moving to a mirror must not
make Snakemake fetch 59 GB again. The md5 (a param) says which file it is.
"""

from pathlib import Path

from eopack.bigearthnet.source import fetch_release_file
from eopack.jobs import end_process, run_job

output = Path(snakemake.output[0])
run_job(
    snakemake.log[0],
    fetch_release_file,
    snakemake.config["bigearthnet"],
    output.name,
    snakemake.params.md5,
    output,
)
# obstore's runtime must not meet the interpreter's finalization (see end_process).
end_process()
