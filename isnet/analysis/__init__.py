"""Dataset-level analysis: rank a set of images by how much a model relies on their background
(:mod:`isnet.analysis.audit`), and find its strategies by clustering heatmaps without masks
(:mod:`isnet.analysis.strategies`, Spectral Relevance Analysis)."""
