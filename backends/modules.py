"""Which torch module runs a network: chosen by the network's representation, not its target.

A layered `compiler.network.Network` (dense, superposed, or any target that compiles to layers)
runs in `SupModule`; a forest (`ConditionalNetwork`) in `ConditionalModule`. A new target that
compiles to one of these representations needs nothing here.
"""

from __future__ import annotations

import torch

from compiler import TARGETS
from compiler.conditional import ConditionalNetwork
from compiler.network import Network

from .torch_module import SupModule
from .tree_module import ConditionalModule

MODULES = ((ConditionalNetwork, ConditionalModule), (Network, SupModule))


def default_dtype(net) -> torch.dtype:
    """The float type `net`'s target computes in unless told otherwise."""
    name = TARGETS.get_target(net.target).default_dtype
    return torch.float64 if name == "float64" else torch.float32


def to_module(net, dtype: torch.dtype | None = None, **kwargs):
    """The torch module of a compiled network, in `dtype` (default: the target's); other
    keyword arguments (device, ...) go to the module.

    Args:
        net: a compiled network.
        dtype: the module's float type (default: `default_dtype(net)`).
        **kwargs: passed to the module (`device`, `max_cells`, `max_pairs`, ...).
    Returns:
        A `SupModule` for a layered `Network`, a `ConditionalModule` for a
        `ConditionalNetwork`.
    Raises:
        TypeError: the network's class has no module.
    """
    dtype = default_dtype(net) if dtype is None else dtype
    for network_type, module_type in MODULES:
        if isinstance(net, network_type):
            return module_type(net, dtype=dtype, **kwargs)
    raise TypeError(f"no torch module runs a {type(net).__name__}")
