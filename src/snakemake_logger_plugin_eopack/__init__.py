"""``snakemake --logger eopack``: Snakemake finds logger plugins by this package name; the
handler is :mod:`eopack.console`."""

from eopack.console import ConsoleHandler as LogHandler

__all__ = ["LogHandler"]
