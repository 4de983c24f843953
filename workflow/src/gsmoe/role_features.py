"""GraphRole's recursive node features, aggregated with NumPy in bulk instead of node by node.

GraphRole 1.1.1 aggregates each generation of recursive features with one pandas
``reindex(...).agg(["sum", "mean"])`` per node, which was about 98 % of the role
extraction time (docs/performance.md has the numbers).  :class:`BulkFeatureExtractor`
computes the same table with a few NumPy reductions per generation.  Its output is
bit-identical to GraphRole's, not merely close: GraphRole bins the features to prune them
and NMF is sensitive to the last bit, so any rounding difference could change the roles.
"""

from __future__ import annotations

from collections.abc import Hashable

import networkx as nx
import numpy as np
import pandas as pd
from graphrole import RecursiveFeatureExtractor

__all__ = ["BulkFeatureExtractor"]

# Integers up to 2**53 convert to float64 exactly, and so do sums that stay below it.
_EXACT_INT_LIMIT = 2**53


class BulkFeatureExtractor(RecursiveFeatureExtractor):
    """``RecursiveFeatureExtractor(G, aggs=["sum", "mean"])`` of GraphRole 1.1.1, faster.

    :meth:`extract_features` returns a DataFrame equal to GraphRole's in every bit: same
    index and column order, same dtypes, the same float64 values.  Only
    :meth:`_get_next_features` is replaced; it mirrors how pandas 3.1 and NumPy 2.4 (the
    versions of ``requirements.lock``) compute GraphRole's per-node aggregation of the
    previous generation's features over the node's neighbours (in ``G[node]`` order):

    * ``sum``: ``DataFrame.agg(["sum", "mean"])`` reduces each dtype's blocks of the
      reindexed ``(features, neighbours)`` values along the neighbour axis, which is
      contiguous there, so NumPy sums each feature pairwise (8-way unrolled, blocks of
      128) in neighbour order.  Here the neighbours' values of all nodes of one degree
      are gathered into one C-contiguous ``(features, nodes, degree)`` array and summed
      over its last axis: the same NumPy reduction, so the same rounding.  Integer
      features are summed in float64, which is exact while the sums stay below 2**53.
    * ``mean``: that sum divided by the number of neighbours (pandas divides its float64
      sum by a float64 count).
    * no neighbours: sum 0 and mean NaN, which GraphRole's ``fillna(0)`` turns into 0.

    The pairwise order needs that contiguous layout.  If ``_features`` were a single block
    and the previous generation's columns a reordered subset of it, pandas would reindex
    both axes at once into a transposed block and add the neighbours one after the other.
    That cannot happen for the unweighted graphs of :func:`gsmoe.roles.graph_roles`: their
    generation-0 features are integers, and GraphRole keeps the oldest member of every
    group of similar features, so the integer ``degree`` (first by name) is never pruned
    and the frame always holds an integer and a float block.  Cases this class does not
    mirror (float features in a frame of one dtype, as with float edge weights; other
    dtypes; integer sums that could reach 2**53; a neighbour or feature missing from the
    table) are left to GraphRole's own per-node code, so the output is always GraphRole's.

    Fragility: this subclass relies on GraphRole 1.1.1 internals (``_final_features``,
    ``_features``, ``generation_count``, ``graph.get_nodes``, ``graph.get_neighbors``
    and the exact pandas calls of ``_get_next_features``) and on the reduction order of
    pandas and NumPy.  GraphRole is pinned to 1.1.1 by the Makefile and
    ``envs/gsmoe.post-deploy.sh``, pandas and NumPy by ``requirements.lock``;
    ``tests/unit/test_roles.py`` compares the two extractors exactly, so rerun it after
    upgrading any of them.
    """

    def __init__(self, G: nx.Graph, max_generations: int = 10) -> None:
        super().__init__(G, max_generations=max_generations, aggs=["sum", "mean"])

    def _get_next_features(self) -> pd.DataFrame:
        prev_features = list(self._final_features[self.generation_count - 1])
        nodes = list(self.graph.get_nodes())
        neighbors = [list(self.graph.get_neighbors(node)) for node in nodes]
        degrees = np.array([len(nbrs) for nbrs in neighbors], dtype=np.int64)
        positions = self._features.index.get_indexer([nbr for nbrs in neighbors for nbr in nbrs])
        if not self._is_mirrored(prev_features, positions, int(degrees.max(initial=0))):
            return super()._get_next_features()

        # (features, rows of self._features); np.take copies, so the layout does not matter.
        values = self._features[prev_features].to_numpy(dtype=np.float64).T
        sums = np.zeros((len(prev_features), len(nodes)))
        offsets = np.concatenate([[0], np.cumsum(degrees)[:-1]])
        for degree in np.unique(degrees[degrees > 0]):
            rows = np.flatnonzero(degrees == degree)
            gather = positions[offsets[rows, None] + np.arange(degree)]
            sums[:, rows] = np.take(values, gather, axis=1).sum(axis=2)
        with np.errstate(invalid="ignore"):
            means = sums / degrees.astype(np.float64)
        block = np.concatenate([sums, means])
        block[np.isnan(block)] = 0.0  # GraphRole's fillna(0): empty neighbourhoods (0 / 0)

        columns = [f"{name}({agg})" for agg in self.aggs for name in prev_features]
        # block.T makes pandas keep ``block`` as its C-contiguous (columns, nodes) block, the
        # layout of GraphRole's DataFrame.from_dict table: pandas' summation order depends
        # on the layout should a later generation run GraphRole's own code.
        return pd.DataFrame(block.T, index=pd.Index(nodes), columns=columns, copy=False)

    def _is_mirrored(self, prev_features: list[Hashable], positions: np.ndarray, max_degree: int) -> bool:
        """Whether :meth:`_get_next_features` reproduces pandas exactly for this generation.

        ``positions`` are the rows of all neighbours in ``self._features`` (-1: missing,
        where GraphRole's reindex would insert NaN rows that pandas skips).
        """
        if (positions < 0).any() or not set(prev_features) <= set(self._features.columns):
            return False
        dtypes = self._features.dtypes
        prev_dtypes = dtypes[prev_features]
        is_int = (prev_dtypes == np.int64).to_numpy()
        is_float = (prev_dtypes == np.float64).to_numpy()
        if not (is_int | is_float).all():
            return False
        if is_float.any() and dtypes.nunique() == 1:  # maybe one block: see the class docstring
            return False
        ints = self._features[[name for name, i in zip(prev_features, is_int, strict=True) if i]].to_numpy()
        return ints.size == 0 or int(np.abs(ints).max()) * max_degree < _EXACT_INT_LIMIT
