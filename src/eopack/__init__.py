"""eopack: Earth-observation open data on AWS -> verified SAFE zips and ML datasets."""

__version__ = "0.1.0"
