"""Find a model's strategies without masks: Spectral Relevance Analysis (SpRAy).

Lapuschkin et al., "Unmasking Clever Hans predictors and assessing what machines really learn"
(Nature Communications 10, 1096, 2019) cluster the heatmaps of one class: images the model solves
the same way have similar heatmaps, so a shortcut (a watermark, a corner mark) shows up as its
own cluster, whose mean heatmap points at it.

Steps (:func:`find_strategies`):

1. each heatmap is downsized by area averaging to ``size × size`` and divided by its largest
   absolute value (so clusters reflect *where* relevance lies, not how much);
2. the affinity of two maps is a Gaussian of their Euclidean distance with *local scaling*
   (Zelnik-Manor & Perona, "Self-tuning spectral clustering", 2004):
   ``A_ij = exp(−d_ij² / (σ_i σ_j))`` with ``σ_i`` the distance from map i to its k-th nearest
   neighbour, so dense and sparse strategies are both held together;
3. the number of clusters is the **eigengap** heuristic: the smallest eigenvalues
   ``λ_1 ≤ λ_2 ≤ …`` of the normalised graph Laplacian are computed, and the number of clusters
   is the ``k`` (up to ``max_clusters``) after which the gap ``λ_{k+1} − λ_k`` is largest;
4. spectral clustering (scikit-learn) with that ``k`` on the same affinity, seeded.

The user may give ``k`` instead (``num_clusters``). With fewer than :data:`MIN_FOR_EIGENGAP`
maps the eigengap has too few eigenvalues to find a real gap: :attr:`Strategies.few` says so,
so a caller never reports a single strategy as a finding when it is only a small sample.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.linalg import eigh
from scipy.sparse.csgraph import laplacian
from scipy.spatial.distance import cdist
from sklearn.cluster import SpectralClustering
from torch import Tensor

MIN_FOR_EIGENGAP = 10
"""Fewest maps for which the eigengap's choice of ``k`` is worth reporting as a finding."""


@dataclass
class Strategies:
    """What :func:`find_strategies` found.

    Attributes:
        labels: (N,) int cluster of each heatmap, 0..num_clusters−1; cluster 0 is the largest.
        num_clusters: the eigengap's choice.
        eigenvalues: the smallest eigenvalues of the normalised Laplacian (for the eigengap plot).
        mean_maps: (num_clusters, size, size) float32, each cluster's mean normalised map.
        sizes: (num_clusters,) members per cluster.
        chosen_by: ``"eigengap"`` or ``"user"`` (``num_clusters`` was given).
        few: fewer than :data:`MIN_FOR_EIGENGAP` maps (an eigengap choice is then unreliable).
    """

    labels: np.ndarray
    num_clusters: int
    eigenvalues: np.ndarray
    mean_maps: Tensor
    sizes: np.ndarray
    chosen_by: str = "eigengap"
    few: bool = False


def normalised_maps(relevance: Tensor, size: int = 16) -> Tensor:
    """Downsize (area average) and scale each map to a largest magnitude of 1.

    Shapes: relevance (N, H, W) → (N, size, size) float32.
    """
    maps = F.adaptive_avg_pool2d(relevance.float()[:, None], size)[:, 0]  # (N, size, size)
    peak = maps.abs().flatten(1).amax(1).clamp_min(1e-12)  # (N,)
    return maps / peak[:, None, None]


def local_scaling_affinity(features: np.ndarray, neighbours: int) -> np.ndarray:
    """``exp(−d_ij² / (σ_i σ_j))``, σ_i = distance to the k-th nearest neighbour; zero diagonal.

    Shapes: features (N, D) → (N, N).
    """
    distances = cdist(features, features)  # (N, N)
    k = min(neighbours, len(features) - 1)
    sigma = np.sort(distances, axis=1)[:, k].clip(min=1e-12)  # column 0 is the map itself
    affinity = np.exp(-distances**2 / (sigma[:, None] * sigma[None, :]))
    np.fill_diagonal(affinity, 0.0)
    return affinity


def eigengap(affinity: np.ndarray, max_clusters: int) -> tuple[int, np.ndarray]:
    """Number of clusters by the largest gap among the smallest Laplacian eigenvalues.

    Returns:
        (k in [1, max_clusters], the ``max_clusters + 1`` smallest eigenvalues).
    """
    count = min(max_clusters + 1, len(affinity))
    values = eigh(laplacian(affinity, normed=True), eigvals_only=True,
                  subset_by_index=[0, count - 1])
    if count < 2:
        return 1, values
    gaps = np.diff(values)  # gap after the k-th eigenvalue is gaps[k-1]
    return int(np.argmax(gaps[: max_clusters])) + 1, values


def find_strategies(relevance: Tensor, size: int = 16, max_clusters: int = 8,
                    neighbours: int = 10, seed: int = 0,
                    num_clusters: int | None = None) -> Strategies:
    """Cluster heatmaps into strategies (SpRAy; see the module docstring).

    Args:
        relevance: (N, H, W) relevance maps, usually of one class (e.g.
            :attr:`isnet.analysis.audit.AuditResult.relevance`).
        size: side of the downsized maps.
        max_clusters: largest number of clusters the eigengap may choose.
        neighbours: k of the local scaling (distance to the k-th neighbour).
        seed: seeds the clustering's k-means step.
        num_clusters: the number of strategies to find, instead of the eigengap's (1 … N).

    Returns:
        :class:`Strategies`.

    Raises:
        ValueError: fewer than 3 maps, or ``num_clusters`` outside 1 … N.
    """
    if relevance.dim() != 3 or len(relevance) < 3:
        raise ValueError(f"need at least 3 relevance maps (N, H, W), got {tuple(relevance.shape)}")
    if num_clusters is not None and not 1 <= int(num_clusters) <= len(relevance):
        raise ValueError(f"the number of strategies must lie between 1 and the {len(relevance)} "
                         f"maps, got {num_clusters}")
    maps = normalised_maps(relevance, size)  # (N, size, size)
    features = maps.flatten(1).double().numpy()  # (N, size²)
    affinity = local_scaling_affinity(features, neighbours)  # (N, N)
    count, eigenvalues = eigengap(affinity, max_clusters)
    if num_clusters is not None:
        count = int(num_clusters)
    if count == 1:
        labels = np.zeros(len(features), dtype=np.int64)
    else:
        clustering = SpectralClustering(n_clusters=count, affinity="precomputed",
                                        assign_labels="cluster_qr", random_state=seed)
        with warnings.catch_warnings():  # separate strategies make a disconnected graph: fine
            warnings.filterwarnings("ignore", message="Graph is not fully connected")
            labels = clustering.fit_predict(affinity).astype(np.int64)
    order = np.argsort(-np.bincount(labels, minlength=count), kind="stable")  # largest first
    labels = np.argsort(order)[labels]
    sizes = np.bincount(labels, minlength=count)
    mean_maps = torch.stack([maps[torch.from_numpy(labels == c)].mean(0) for c in range(count)])
    return Strategies(labels, count, eigenvalues, mean_maps, sizes,
                      "eigengap" if num_clusters is None else "user",
                      len(relevance) < MIN_FOR_EIGENGAP)
