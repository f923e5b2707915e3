"""Toy models of superposition from the papers sup was built from, beside sup's exact networks.

- `toymodels.cc`: the compressed-computation model (Braun et al. 2025) and the analysis of
  Bhagat, Molas-Medina, Giglemiani & Heimersheim (naive and SNMF baselines, mixing matrix).
- `toymodels.pairs`: the same 50-neuron MLP trained on pairwise ANDs of sparse boolean
  features, beside sup's compiled superposed network for the same circuit.
- `toymodels.autoencoder`: Chowdhury & Weiner's tied-weight power autoencoders, with the
  improvement I over the zero output computed exactly from the moments of the inputs.
- `toymodels.commands`: what `sup toy cc` and `sup toy autoencoder` run.

Layering: beside `verify` (imports dsl, compiler, backends, verify; `sup.cli` imports it).
"""

from .common import ToyInputError, resolve_device

__all__ = ["ToyInputError", "resolve_device"]
