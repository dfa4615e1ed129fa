"""Figures and tables of the Snakemake report (``snakemake --report report.html``).

One module per figure family: ``footprints`` (a map per AOI), ``quicklooks`` (each SAFE
product's own quick-look), ``contact_sheet`` (an AOI's quicklooks, numbered as on its map),
``bigearthnet`` (sample patches, class legend, class statistics) and ``summary`` (what the run
did, as an HTML page); ``products`` reads a Sentinel-1 product id for the captions. Figures are
drawn with matplotlib without pyplot (no global state, no display) by ``plotting``.
"""
