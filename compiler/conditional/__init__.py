"""The `conditional` target: trees of neurons, O(log n) operations per input (Koyuncu).

compile.py decides how each output is compiled; tree.py is the Forest representation,
tables.py compiles lookup tables, synthesis.py synthesises trees from the dense network;
network.py is the network class, accounting.py its accounting.
"""

from __future__ import annotations

from ..target import OptionError, Target, TargetUnavailable, register, require_int
from .accounting import account_conditional
from .compile import ConditionalOptions, compile_conditional, table_outputs
from .network import ConditionalNetwork
from .synthesis import SynthesisTooLarge
from .tables import METHODS as TABLE_METHODS


class ConditionalTarget(Target):
    """A forest of neuron trees: each input runs only the neurons on its path."""
    name = "conditional"
    summary = "trees of neurons, O(log n) operations per input for tables"
    options_type = ConditionalOptions
    network_type = ConditionalNetwork
    methods = ("exhaustive", "smt", "sample")
    default_dtype = "float64"       # keys are integers up to 2^32 and more

    def make_options(self, **values) -> ConditionalOptions:
        """ConditionalOptions; OptionError for a non-positive max_domain or unknown method."""
        options = super().make_options(**values)
        require_int("max_domain", options.max_domain, 1)
        require_int("seed", options.seed, 0)
        if options.table_method not in TABLE_METHODS:
            raise OptionError("table_method", f"is not a table method: '{options.table_method}' "
                                              f"(choose from {', '.join(TABLE_METHODS)})")
        return options

    def compile(self, circuit, options, progress=None) -> ConditionalNetwork:
        """The forest of `circuit`; TargetUnavailable when a cone is too large to synthesise."""
        try:
            return compile_conditional(circuit, options)
        except SynthesisTooLarge as exc:
            hint = ("raise the max-domain limit, or compile with the dense target"
                    if exc.domain_limit else "a memory bound; compile with the dense target")
            raise TargetUnavailable(f"conditional target: {exc} ({hint})",
                                    "max_domain" if exc.domain_limit else None) from None

    def account(self, net: ConditionalNetwork):
        """Gates, parameters and ops on the path taken (compiler/conditional/accounting.py)."""
        return account_conditional(net)


CONDITIONAL = register(ConditionalTarget())

__all__ = ["CONDITIONAL", "ConditionalNetwork", "ConditionalOptions", "ConditionalTarget",
           "SynthesisTooLarge", "compile_conditional", "table_outputs"]
