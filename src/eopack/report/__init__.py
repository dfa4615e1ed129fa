"""Figures and tables of the Snakemake report (``snakemake --report report.html``).

One module per figure family: ``footprints`` (a map per AOI), ``quicklooks`` (the SAFE
products' own quick-look and a contact sheet per AOI), ``bigearthnet`` (sample patches, class
legend, class statistics) and ``summary`` (what the run did, as an HTML table). Figures are
drawn with matplotlib without pyplot (no global state, no display) by ``plotting``.
"""
