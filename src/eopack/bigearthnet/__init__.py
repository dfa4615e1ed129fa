"""BigEarthNet v2: patches -> RGB and class-mask PNGs, classes.json (see DESIGN.md)."""
