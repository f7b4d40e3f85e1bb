"""What a dataset audit says: per-class summaries and SpRAy strategies of a :class:`StreamAudit`.

* :func:`class_summaries` — per true class: images, accuracy, mean and median background
  share, and how many images exceed the reliance threshold;
* :func:`class_strategies` — SpRAy (:func:`isnet.analysis.strategies.find_strategies`) on the
  downsized maps of the images *predicted* as each class (a shortcut is a way of reaching a
  prediction). Spectral clustering needs an N × N affinity, so at most ``limit`` maps per class
  are clustered: a seeded random sample, named as such in the result.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from isnet.analysis.strategies import find_strategies
from isnet.analysis.stream_audit import StreamAudit

RELIANCE_THRESHOLD = 0.5
"""A background share above this counts as background-reliant (half the relevance outside)."""


def class_summaries(audit: StreamAudit, class_names: list[str],
                    threshold: float = RELIANCE_THRESHOLD) -> list[dict[str, Any]]:
    """One row per class with any image: ``class``, ``images``, ``accuracy``,
    ``mean_share``, ``median_share``, ``reliant`` (share > ``threshold``); shares over images
    with a mask only (None where the class has none)."""
    rows = []
    for label, name in enumerate(class_names):
        members = audit.labels == label
        if not members.any():
            continue
        shares = audit.background_share[members]
        shares = shares[~np.isnan(shares)]
        rows.append({"class": name, "images": int(members.sum()),
                     "accuracy": float((audit.predictions[members] == label).mean()),
                     "mean_share": float(shares.mean()) if len(shares) else None,
                     "median_share": float(np.median(shares)) if len(shares) else None,
                     "reliant": int((shares > threshold).sum())})
    return rows


def overall(audit: StreamAudit, threshold: float = RELIANCE_THRESHOLD) -> dict[str, Any]:
    """Images, accuracy, mean background share and reliant images over the whole set."""
    shares = audit.background_share[~np.isnan(audit.background_share)]
    return {"images": len(audit), "skipped": len(audit.skipped),
            "accuracy": float((audit.predictions == audit.labels).mean()) if len(audit) else None,
            "mean_share": float(shares.mean()) if len(shares) else None,
            "reliant": int((shares > threshold).sum()), "threshold": threshold,
            "complete": audit.complete}


def class_strategies(audit: StreamAudit, class_names: list[str], limit: int = 500,
                     seed: int = 0, max_clusters: int = 8) -> list[dict[str, Any]]:
    """SpRAy per predicted class (see the module docstring).

    Returns:
        Per class with at least 3 predictions: ``class``, ``predicted``, ``clustered`` (the
        sample size), ``clusters`` (each: ``size``, ``mean_share`` of its members and
        ``mean_map`` (m, m) float32, largest cluster first).
    """
    generator = np.random.default_rng(seed)
    found = []
    for label, name in enumerate(class_names):
        members = np.flatnonzero(audit.predictions == label)
        if len(members) < 3:
            continue
        if len(members) > limit:
            members = np.sort(generator.choice(members, limit, replace=False))
        maps = torch.from_numpy(audit.maps[members].astype(np.float32))
        strategies = find_strategies(maps, size=maps.shape[-1], max_clusters=max_clusters,
                                     seed=seed)
        clusters = []
        for cluster in range(strategies.num_clusters):
            inside = members[strategies.labels == cluster]
            shares = audit.background_share[inside]
            shares = shares[~np.isnan(shares)]
            clusters.append({"size": int(strategies.sizes[cluster]),
                             "mean_share": float(shares.mean()) if len(shares) else None,
                             "mean_map": strategies.mean_maps[cluster].numpy()})
        found.append({"class": name, "predicted": int((audit.predictions == label).sum()),
                      "clustered": len(members), "clusters": clusters})
    return found
