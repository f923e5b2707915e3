"""Hook points with TransformerLens's names and semantics, without depending on TransformerLens.

A `HookPoint` is an identity module placed at a site of a network (`hook_in`,
`layers.3.hook_pre`, ...). A hook is a function `fn(activation, hook) -> new activation or None`;
it sees the activation at the site and may replace it (an ablation, a patch). A module that
derives from `HookedRootModule` offers the calls interpretability code already uses:

    out, cache = model.run_with_cache(x)                     # every site's activation
    cache["layers.0.hook_post"]                              # [batch, width]
    out = model.run_with_hooks(x, fwd_hooks=[("layers.0.hook_post", zero_neuron_3)])
    model.hook_dict                                          # name -> HookPoint

As in TransformerLens, a hook name may be replaced by a filter function of the name
(`lambda name: name.endswith("hook_post")`), hooks added by `run_with_hooks` are removed when it
returns, and `run_with_cache` keeps tensors detached unless asked for gradients.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable, Optional, Union

import torch
from torch import nn

NameFilter = Union[str, Callable[[str], bool], Iterable[str], None]


class HookPoint(nn.Module):
    """An identity at a named site; hooks registered on it read or replace the activation.

    `name` is set by the root module (its path in `named_modules()`)."""

    def __init__(self):
        super().__init__()
        self.name: Optional[str] = None
        self._handles: list = []

    def add_hook(self, hook: Callable, dir: str = "fwd") -> None:  # noqa: A002 (TL's keyword)
        """Run `hook(activation, hook=self)` when the activation passes (`dir="fwd"`) or its
        gradient does (`dir="bwd"`); a non-None return value replaces it."""
        if dir == "fwd":
            def forward_hook(module, inputs, output):
                return hook(output, hook=self)
            handle = self.register_forward_hook(forward_hook)
        elif dir == "bwd":
            def backward_hook(module, grad_input, grad_output):
                result = hook(grad_output[0], hook=self)
                return None if result is None else (result,)
            handle = self.register_full_backward_hook(backward_hook)
        else:
            raise ValueError(f"hook direction must be 'fwd' or 'bwd', not {dir!r}")
        self._handles.append(handle)

    def remove_hooks(self, dir: str = "both") -> None:  # noqa: A002
        """Remove the hooks added with `add_hook` (`dir` is accepted for TransformerLens
        compatibility; all of this point's hooks are removed)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The activation, unchanged (hooks act around this call)."""
        return x


class ActivationCache(dict):
    """Activations by hook name (a dict), as `run_with_cache` returns them.

    Besides `cache["layers.0.hook_post"]`, `cache["hook_post", 0]` names the same site
    (TransformerLens's short form)."""

    def __getitem__(self, key):
        if isinstance(key, tuple):
            kind, layer = key
            kind = kind if kind.startswith("hook_") else f"hook_{kind}"
            key = f"layers.{layer}.{kind}"
        return super().__getitem__(key)

    def remove_batch_dim(self) -> "ActivationCache":
        """The cache of a batch of one, without its batch dimension."""
        return ActivationCache({name: value[0] for name, value in self.items()})


class HookedRootModule(nn.Module):
    """A module whose `HookPoint`s are addressed by name. Call `setup()` at the end of the
    subclass's `__init__` (it names the hook points)."""

    def setup(self) -> None:
        """Name every `HookPoint` after its path and index them in `hook_dict`."""
        self.mod_dict = {name: module for name, module in self.named_modules() if name}
        self.hook_dict: dict[str, HookPoint] = {}
        for name, module in self.mod_dict.items():
            if isinstance(module, HookPoint):
                module.name = name
                self.hook_dict[name] = module

    def hook_names(self) -> list[str]:
        """Every site's name, in the order activations flow."""
        return list(self.hook_dict)

    def _matching(self, names: NameFilter) -> list[str]:
        if names is None:
            return list(self.hook_dict)
        if isinstance(names, str):
            names = [names]
        if callable(names):
            return [name for name in self.hook_dict if names(name)]
        names = list(names)
        unknown = [name for name in names if name not in self.hook_dict]
        if unknown:
            raise KeyError(f"no hook point named {unknown[0]!r}; the sites are: "
                           f"{', '.join(self.hook_dict)}")
        return names

    def add_hook(self, name: NameFilter, hook: Callable, dir: str = "fwd") -> None:  # noqa: A002
        """Add `hook` at the site `name` (or at every site a filter function accepts)."""
        for site in self._matching(name):
            self.hook_dict[site].add_hook(hook, dir=dir)

    def reset_hooks(self) -> None:
        """Remove every hook added through the hook points."""
        for point in self.hook_dict.values():
            point.remove_hooks()

    @contextmanager
    def hooks(self, fwd_hooks=(), bwd_hooks=(), reset_hooks_end: bool = True):
        """A context in which the given (name or filter, hook) pairs are active."""
        try:
            for name, hook in fwd_hooks:
                self.add_hook(name, hook, dir="fwd")
            for name, hook in bwd_hooks:
                self.add_hook(name, hook, dir="bwd")
            yield self
        finally:
            if reset_hooks_end:
                self.reset_hooks()

    def run_with_hooks(self, *args, fwd_hooks=(), bwd_hooks=(), reset_hooks_end: bool = True,
                       clear_contexts: bool = False, **kwargs):
        """`forward(*args, **kwargs)` with the given hooks active; they are removed afterwards
        unless `reset_hooks_end` is False."""
        with self.hooks(fwd_hooks, bwd_hooks, reset_hooks_end):
            return self(*args, **kwargs)

    def run_with_cache(self, *args, names_filter: NameFilter = None, device=None,
                       remove_batch_dim: bool = False, incl_bwd: bool = False,
                       return_cache_object: bool = True, **kwargs):
        """`forward(*args, **kwargs)` and the activation at every site (or those `names_filter`
        selects) as `(output, ActivationCache)`. Activations are detached; with `incl_bwd` the
        output must be a scalar-reducible tensor and gradients are cached as `NAME_grad` after
        `output.sum().backward()`."""
        cache = ActivationCache()
        chunks: dict[str, list] = {}

        def save(tensor, hook):
            value = tensor.detach()
            chunks.setdefault(hook.name, []).append(value if device is None else value.to(device))

        def save_grad(grad, hook):
            chunks.setdefault(hook.name + "_grad", []).append(grad.detach())

        names = self._matching(names_filter)
        with self.hooks([(name, save) for name in names],
                        [(name, save_grad) for name in names] if incl_bwd else []):
            out = self(*args, **kwargs)
            if incl_bwd:
                out.sum().backward()
        for name, parts in chunks.items():
            # a module that cuts large batches into chunks calls each hook once per chunk;
            # gradients of several chunks arrive in no fixed order, so they are refused
            if name.endswith("_grad") and len(parts) > 1:
                raise ValueError("incl_bwd needs the batch to run as one chunk: pass a "
                                 "smaller batch (or build the module with a larger max_cells)")
            cache[name] = parts[0] if len(parts) == 1 else torch.cat(parts)
        if remove_batch_dim:
            cache = cache.remove_batch_dim()
        return out, (cache if return_cache_object else dict(cache))
