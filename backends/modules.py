"""Which torch module runs a network: chosen by the network's representation, not its target.

A layered `compiler.network.Network` (dense, superposed, or any target that compiles to layers)
runs in `SupModule`; a forest (`ConditionalNetwork`) in `ConditionalModule`. A new target that
compiles to one of these representations needs nothing here.
"""

from __future__ import annotations

from compiler.conditional import ConditionalNetwork
from compiler.network import Network

from .torch_module import SupModule
from .tree_module import ConditionalModule

MODULES = ((ConditionalNetwork, ConditionalModule), (Network, SupModule))


def to_module(net, **kwargs):
    """The torch module of a compiled network (keyword arguments: dtype, device, ...).

    Raises:
        TypeError: the network's class has no module.
    """
    for network_type, module_type in MODULES:
        if isinstance(net, network_type):
            return module_type(net, **kwargs)
    raise TypeError(f"no torch module runs a {type(net).__name__}")
