"""GraphSAGE-MoE model library: experts, gates, the layer and the network."""

from gsmoe.nn.conv import SAGEMoEConv
from gsmoe.nn.experts import ExpertLinear
from gsmoe.nn.gates import DenseGate, Gate, GateContext, GateOutput, NoisyTopKGate, RoleGate, SharedGate
from gsmoe.nn.inputs import SparseFeatures
from gsmoe.nn.model import GraphSAGEMoE, ModelOutput, build_model

__all__ = [
    "DenseGate",
    "ExpertLinear",
    "Gate",
    "GateContext",
    "GateOutput",
    "GraphSAGEMoE",
    "ModelOutput",
    "NoisyTopKGate",
    "RoleGate",
    "SAGEMoEConv",
    "SharedGate",
    "SparseFeatures",
    "build_model",
]
