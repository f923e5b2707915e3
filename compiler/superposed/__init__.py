"""The `superposed` target: many output features on far fewer neurons (computation in
superposition), proved exact.

options.py (SuperposedOptions) → select.py (which outputs qualify) → search.py (smallest exact
channel width, channels.py's criterion, error_budget.py for approximate mode) → compile.py
(the network, the dense fallback beside it) with multilevel.py (gates over intermediate
features) and codes.py (inputs / outputs in superposition).
"""

from __future__ import annotations

from ..target import CompileNotes, OptionError, Target, register
from ..network import Network
from .codes import CodeError, CodeTooNarrow
from .compile import compile_superposed, merge_network
from .options import CONSTRUCTIONS, SuperposedOptions
from .select import superposable


class SuperposedTarget(Target):
    """Channel neurons shared by many outputs, exact on the sparse domain; the rest dense."""
    name = "superposed"
    summary = "outputs share channel neurons (computation in superposition), proved exact"
    options_type = SuperposedOptions

    def make_options(self, **values) -> SuperposedOptions:
        """SuperposedOptions; OptionError for a rate outside [0, 1], a code width <= 0, or
        codes combined with an error budget."""
        options = super().make_options(**values)
        rate = options.max_error
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise OptionError("max_error", f"must be a rate between 0 and 1, got {rate}")
        coded = options.input_code is not None or options.output_code is not None
        if coded and rate is not None:
            raise OptionError("max_error", "cannot be combined with input / output codes "
                                           "(coded networks are certified exact)")
        for key in ("input_code", "output_code"):
            dim = getattr(options, key)
            if dim is not None and dim <= 0:
                raise OptionError(key, f"must be a positive width, got {dim}")
        if options.construction not in CONSTRUCTIONS:
            raise OptionError("construction", f"is not a construction: '{options.construction}' "
                                              f"(choose from {', '.join(CONSTRUCTIONS)})")
        return options

    def compile(self, circuit, options, progress=None) -> Network:
        """The superposed network of `circuit` (compiler/superposed/compile.py)."""
        return compile_superposed(circuit, options, progress=progress)

    def compile_notes(self, net: Network) -> CompileNotes:
        """How many outputs were superposed, on how many channel neurons, and the measured
        error of an approximate network."""
        meta = net.meta
        data = {k: meta[k] for k in ("construction", "superposed_outputs", "dense_outputs",
                                     "channel_neurons", "channel_size")}
        data["levels"] = meta.get("levels", [])
        text = ""
        if "measured_error" in meta:
            data.update(max_error=meta["max_error"], measured_error=meta["measured_error"])
            e = meta["measured_error"]
            text += (f"max error {meta['max_error']:g}: measured error rate {e['rate']:.3g} "
                     f"({e['how']}" + (f", <= {e['upper']:.3g} at 95%" if e["how"] == "sampled"
                                       else f", {e['failing_inputs']:,} of {e['domain_size']:,} inputs")
                     + f"); {e['failing_outputs']:,} outputs not exact\n")
        text += (f"superposed {meta['superposed_outputs']:,} outputs on "
                 f"{meta['channel_neurons']:,} channel neurons (channels of "
                 f"{meta['channel_size']}, {meta['construction']}); "
                 f"{meta['dense_outputs']:,} outputs compiled densely")
        return CompileNotes("superposed", data, text)


SUPERPOSED = register(SuperposedTarget())

__all__ = ["CONSTRUCTIONS", "CodeError", "CodeTooNarrow", "SUPERPOSED", "SuperposedOptions",
           "SuperposedTarget", "compile_superposed", "merge_network", "superposable"]
