"""The GraphSAGE-MoE network: a stack of :class:`SAGEMoEConv` layers and a classifier head."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import global_max_pool

from gsmoe.modelspec import MODEL_KEYS, check_model
from gsmoe.nn.conv import SAGEMoEConv
from gsmoe.nn.inputs import SPARSE_THRESHOLD, SparseFeatures, maybe_sparse, mean_adjacency

TASKS = ("node", "graph")


class ModelOutput(NamedTuple):
    log_probs: Tensor
    aux_loss: Tensor


class GraphSAGEMoE(nn.Module):
    r"""GraphSAGE(-MoE) stack as in the authors' ``GNNStack``.

    ``num_layers`` :class:`SAGEMoEConv` layers (``in -> hidden -> ... -> hidden``), each
    followed by ReLU and dropout (the last one too); for the graph task a global max pool;
    then ``Linear(hidden, hidden) -> Dropout -> Linear(hidden, classes)`` and log-softmax.

    Args:
        in_channels (int): Size of the node features.
        num_classes (int): Number of classes.
        task (str): ``"node"`` (one prediction per node) or ``"graph"`` (per graph).
        hidden (int, optional): Width of every layer. (default: :obj:`32`)
        num_layers (int, optional): Number of graph layers. (default: :obj:`2`)
        dropout (float, optional): Dropout probability. (default: :obj:`0.5`)
        sparse_threshold (float, optional): The first layer reads the raw features as a
            :class:`~gsmoe.nn.inputs.SparseFeatures` (sparse products, same results) when
            fewer than this fraction of them are non-zero; 0 turns it off.  The sparse copy
            is cached while ``data.x`` stays the same tensor, unmodified.  The raw input is
            never dropped out (as in the authors' code), so it stays sparse.
            (default: :obj:`0.3`)
        **conv_kwargs: MoE options passed to every :class:`SAGEMoEConv` (placement, gate,
            num_experts, message_gate_node, message_activation, update_activation and the
            gate's options).

    These defaults (and the layer's: a dense 4-expert layer) serve direct use of the
    library; a run gets every value from its run config (:func:`build_model`), whose
    defaults are the config schema's.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        task: str,
        hidden: int = 32,
        num_layers: int = 2,
        dropout: float = 0.5,
        sparse_threshold: float = SPARSE_THRESHOLD,
        **conv_kwargs: Any,
    ):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(map(repr, TASKS))}; got {task!r}")
        check_model({"hidden": hidden, "num_layers": num_layers, "dropout": dropout})
        self.task = task
        self.dropout = dropout
        self.sparse_threshold = sparse_threshold
        # (features tensor, its version counter, what the first layer reads); not state.
        self._input_cache: Optional[tuple[Tensor, int, Union[Tensor, SparseFeatures]]] = None
        # (edge_index, its version counter, number of nodes, mean adjacency); not state.
        self._adjacency_cache: Optional[tuple[Tensor, int, int, SparseFeatures]] = None
        self.convs = nn.ModuleList(
            SAGEMoEConv(in_channels if i == 0 else hidden, hidden, **conv_kwargs) for i in range(num_layers)
        )
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    @property
    def needs_roles(self) -> bool:
        return any(conv.needs_roles for conv in self.convs)

    def forward(self, data: Data) -> ModelOutput:
        x, edge_index = data.x, data.edge_index
        batch = getattr(data, "batch", None)
        roles = getattr(data, "roles", None)
        if self.needs_roles and roles is None:
            raise ValueError("gate 'roles' needs GraphRole role distributions as data.roles (N, R); the data has none")
        if batch is None:
            num_graphs = 1
        elif isinstance(getattr(data, "num_graphs", None), int):
            num_graphs = data.num_graphs
        else:
            num_graphs = int(batch.max()) + 1 if batch.numel() > 0 else 0
        if roles is not None:
            roles = roles.to(x.dtype)

        aux_loss = x.new_zeros(())
        h: Union[Tensor, SparseFeatures] = self.first_layer_input(x)
        # A batch of gsmoe.batching brings its adjacency, cut from the dataset's.
        adjacency = getattr(data, "mean_adjacency", None)
        if adjacency is None or adjacency.dtype != x.dtype:
            adjacency = self.adjacency(edge_index, x.size(0), x.dtype)
        for conv in self.convs:
            x, aux = conv(h, edge_index, batch=batch, roles=roles, num_graphs=num_graphs, adjacency=adjacency)
            aux_loss = aux_loss + aux
            x = h = F.dropout(torch.relu(x), p=self.dropout, training=self.training)
        if self.task == "graph":
            if batch is None:
                batch = torch.zeros(x.size(0), dtype=torch.long, device=x.device)
            x = global_max_pool(x, batch, size=num_graphs)
        return ModelOutput(F.log_softmax(self.head(x), dim=-1), aux_loss)

    def first_layer_input(self, x: Tensor) -> Union[Tensor, SparseFeatures]:
        """``x`` or its cached :class:`~gsmoe.nn.inputs.SparseFeatures` (see ``sparse_threshold``)."""
        if self.sparse_threshold <= 0 or x.requires_grad:
            return x
        cache = self._input_cache
        if cache is not None and cache[0] is x and cache[1] == x._version:
            return cache[2]
        features = maybe_sparse(x, self.sparse_threshold)
        self._input_cache = (x, x._version, features)
        return features

    def adjacency(self, edge_index: Tensor, num_nodes: int, dtype: torch.dtype) -> SparseFeatures:
        """The mean adjacency of ``edge_index`` for every layer, cached while ``edge_index``
        stays the same tensor, unmodified (a full-batch node task builds it once)."""
        cache = self._adjacency_cache
        if (
            cache is not None
            and cache[0] is edge_index
            and cache[1] == edge_index._version
            and cache[2] == num_nodes
            and cache[3].dtype == dtype
        ):
            return cache[3]
        adjacency = mean_adjacency(edge_index, num_nodes, dtype)
        self._adjacency_cache = (edge_index, edge_index._version, num_nodes, adjacency)
        return adjacency

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def active_parameters(self) -> int:
        """Parameters one forward pass uses (top-k: only k of the E experts per MoE stage)."""
        head = sum(p.numel() for p in self.head.parameters())
        return head + sum(conv.active_parameters() for conv in self.convs)

    def expert_load(self) -> dict[str, list[float]]:
        """``{"conv0.update": [...], "conv0.message": [...], ...}`` from the last forward."""
        return {
            f"conv{i}.{stage}": load for i, conv in enumerate(self.convs) for stage, load in conv.expert_load().items()
        }


def build_model(model_cfg: dict[str, Any], in_channels: int, num_classes: int, task: str) -> GraphSAGEMoE:
    """Build the network from the ``model:`` block of a run config (docs/design.md).

    ``model_cfg`` sets every key of :data:`~gsmoe.modelspec.MODEL_KEYS`; missing keys,
    unknown keys and bad values raise a ValueError that names them.  Keys that only matter
    for another gate or placement (e.g. ``top_k`` in a dense run) are checked against the
    schema but not against the other keys.  To start from the workflow's defaults:
    ``{**gsmoe.modelspec.model_defaults(), **overrides}``.
    """
    unknown = sorted(set(model_cfg) - set(MODEL_KEYS))
    if unknown:
        raise ValueError(f"unknown model config key(s): {', '.join(unknown)}")
    missing = [key for key in MODEL_KEYS if key not in model_cfg]
    if missing:
        raise ValueError(
            f"model config lacks key(s): {', '.join(missing)}; start from "
            "gsmoe.modelspec.model_defaults() (the config schema's defaults)"
        )
    return GraphSAGEMoE(in_channels, num_classes, task, **model_cfg)
