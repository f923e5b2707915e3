"""Backends: run compiled networks (torch, CPU or CUDA) and store them (safetensors, ONNX).

    from backends import SupModule, save, load
    module = SupModule(net)                 # weights as buffers, .to(device) works
    module = to_module(net)                 # ConditionalModule for a conditional network
    values = module.forward_active([[3, 17]])
    save(net, "model.safetensors"); net2 = load("model.safetensors")
"""

from .modules import to_module
from .serialize import ModelFileError, load, save
from .torch_module import ModuleLayer, SupModule, default_device
from .tree_module import ConditionalModule

__all__ = ["ConditionalModule", "ModelFileError", "ModuleLayer", "SupModule", "default_device",
           "load", "save", "to_module"]
