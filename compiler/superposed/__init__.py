"""The `superposed` target: many output features on far fewer neurons (computation in
superposition), proved exact.

options.py (SuperposedOptions) → select.py (which outputs qualify) → search.py (smallest exact
channel width, channels.py's criterion, error_budget.py for approximate mode) → compile.py
(the network, the dense fallback beside it) with multilevel.py (gates over intermediate
features) and codes.py (inputs / outputs in superposition).
"""

from __future__ import annotations

from ..target import CompileNotes, OptionError, Target, register, require_int
from ..network import Network
from .bitcheck_torch import check_device, is_device_name
from .codes import CodeError, CodeTooNarrow
from .compile import compile_superposed, merge_network
from .options import CODE_KINDS, CONSTRUCTIONS, SuperposedOptions
from .select import superposable


class SuperposedTarget(Target):
    """Channel neurons shared by many outputs, exact on the sparse domain; the rest dense."""
    name = "superposed"
    summary = "outputs share channel neurons (computation in superposition), proved exact"
    options_type = SuperposedOptions

    def make_options(self, **values) -> SuperposedOptions:
        """SuperposedOptions; OptionError for a rate outside [0, 1], a code width <= 0, a code
        kind other than rs / auto, a kind mixed with a width, or codes combined with an error
        budget."""
        options = super().make_options(**values)
        require_int("width", options.width, 1)
        require_int("channel", options.channel, 1)
        require_int("seed", options.seed, 0)
        require_int("code_seed", options.code_seed, 0)
        require_int("max_memory", options.max_memory, 1 << 20)
        _check_device_option(options.check_device)
        rate = options.max_error
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise OptionError("max_error", f"must be a rate between 0 and 1, got {rate}")
        coded = options.input_code is not None or options.output_code is not None
        if coded and rate is not None:
            raise OptionError("max_error", "cannot be combined with input / output codes "
                                           "(coded networks are certified exact)")
        for key in ("input_code", "output_code"):
            dim = getattr(options, key)
            if isinstance(dim, str):
                if dim not in CODE_KINDS:
                    raise OptionError(key, f"must be a width or a code kind ({', '.join(CODE_KINDS)}), "
                                           f"got '{dim}'")
            elif dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0):
                raise OptionError(key, f"must be a positive width, got {dim}")
        kinds = {isinstance(getattr(options, k), str) for k in ("input_code", "output_code")
                 if getattr(options, k) is not None}
        if len(kinds) == 2:
            raise OptionError("output_code", "cannot mix a code kind (rs, auto) with a sign-code "
                                             "width: give both as kinds or both as widths")
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
        codes = meta.get("codes") or {}
        rs = codes.get("rs")
        if rs is not None and codes.get("kind") == "rs-mixed":
            data["rs"] = {k: rs[k] for k in ("q", "lam", "c", "K", "n")}
            data["rs"]["dense_outputs"] = codes["dense_outputs"]
            return CompileNotes("superposed", data, text + (
                f"rs codes with the dense fallback: {meta['superposed_outputs']:,} coded outputs "
                f"on {rs['n']:,} count neurons (GF({rs['q']}), degree <= {rs['lam']}, "
                f"{rs['c']} blocks), {codes['dense_outputs']:,} outputs compiled densely beside "
                f"them ({meta['fallback_reason']}); in this network the codes are folded into "
                "the layers, its inputs and outputs are not coded"))
        if rs is not None and codes.get("kind") == "rs-levels":
            one, two = codes["level1"], codes["level2"]
            data["rs"] = {k: rs[k] for k in ("q", "lam", "c", "K", "d_in")}
            data["rs"].update(level1_neurons=one["neurons"], level1_dim=one["dim"],
                              level2_neurons=two["neurons"], level2_dim=two["dim"])
            return CompileNotes("superposed", data, text + (
                f"rs codes, two levels: {meta['superposed_outputs']:,} gates over ANDs; level 1 "
                f"{one['neurons']:,} neurons writing a {one['dim']:,}-wide code of all "
                f"{rs['arities'][0]}-subsets, level 2 {two['neurons']:,} neurons writing a "
                f"{two['dim']:,}-wide output code (GF({rs['q']}), degree <= {rs['lam']}, "
                f"{rs['c']} blocks; input code {rs['d_in']:,} wide)"))
        if rs is not None:
            data["rs"] = {k: rs[k] for k in ("q", "lam", "c", "K", "n", "d_in", "d_out")}
            data["rs"]["arities"] = rs.get("arities", [2])
            gates = ("pairwise ANDs" if data["rs"]["arities"] == [2] else
                     f"gates (terms of {', '.join(map(str, data['rs']['arities']))} features)")
            return CompileNotes("superposed", data, text + (
                f"rs codes: {meta['superposed_outputs']:,} {gates} on {rs['n']:,} neurons "
                f"(universal counts over GF({rs['q']}), degree <= {rs['lam']}, {rs['c']} blocks; "
                f"input code {rs['d_in']:,} wide, output code {rs['d_out']:,} wide)"))
        text += (f"superposed {meta['superposed_outputs']:,} outputs on "
                 f"{meta['channel_neurons']:,} channel neurons (channels of "
                 f"{meta['channel_size']}, {meta['construction']}); "
                 f"{meta['dense_outputs']:,} output{'' if meta['dense_outputs'] == 1 else 's'} "
                 "compiled densely"
                 if meta["superposed_outputs"] else
                 f"superposed no output; all {meta['dense_outputs']:,} compiled densely")
        for key in ("groups", "kept", "width"):
            if key in meta:
                data[key] = meta[key]
        for group in meta.get("groups", []):
            if not group["superposed"]:
                text += f"\n  not superposed: {group['label']}: {group['reason']}"
        for level in meta.get("levels", [])[1:]:
            if not level.get("used") and level.get("reason"):
                text += (f"\n  not superposed: {level['outputs']:,} gates over intermediate "
                         f"features: {level['reason']}")
        kept = meta.get("kept")
        if kept is not None:
            text += "\n" + _kept_text(kept)
        return CompileNotes("superposed", data, text)


def _kept_text(kept: dict) -> str:
    """The line saying which form was kept and why (the superposed target never returns more
    neurons than the dense one, nor as many with more parameters)."""
    (n_s, p_s), (n_d, p_d) = ((kept["superposed_neurons"], kept["superposed_params"]),
                              (kept["dense_neurons"], kept["dense_params"]))
    if kept["form"] == "dense":
        return (f"kept the dense form: {n_d:,} neurons and {p_d:,} parameters against {n_s:,} "
                f"and {p_s:,} superposed")
    params = ("though more parameters" if p_s > p_d else "and no more parameters")
    return (f"kept the superposed form: {n_s:,} neurons against {n_d:,} dense, {params} "
            f"({p_s:,} against {p_d:,})")


SUPERPOSED = register(SuperposedTarget())

__all__ = ["CODE_KINDS", "CONSTRUCTIONS", "CodeError", "CodeTooNarrow", "SUPERPOSED", "SuperposedOptions",
           "SuperposedTarget", "compile_superposed", "merge_network", "superposable"]


def _check_device_option(device) -> None:
    """OptionError unless `device` is None, "cpu", or "cuda" / "cuda:N" with a GPU present."""
    if device is None:
        return
    if not is_device_name(device):
        raise OptionError("check_device", f"must be cpu, cuda or cuda:N, got '{device}'")
    if str(device) != "cpu":
        try:
            check_device(device)
        except ValueError as e:
            raise OptionError("check_device", str(e)) from None
