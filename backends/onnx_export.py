"""ONNX export of a network's dense form: MatMul + Add (+ Relu) per layer, weights as initializers.

Input `x` is a float [batch, m] 0/1 feature matrix, output `y` the read-out values [batch, n_out]
(`batch` a named dynamic dimension; an output is 1 when y > 0.5). Dense matrices of every layer are stored, so this fits networks
whose dense parameter count is moderate; larger ones are refused with a clear message.
Needs the optional `onnx` package (`pip install -e '.[onnx]'`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compiler.network import Network

MAX_DENSE_PARAMS = 50_000_000


class OnnxUnavailable(Exception):
    """ONNX export is not possible for this network or environment."""


def to_onnx(net: Network, dtype=np.float32):
    """The network's dense form as an ONNX model (module docstring).

    Args:
        net: a layered network.
        dtype: np.float32 or np.float64.
    Returns:
        A checked `onnx.ModelProto`: input `x` [B, m], output `y` [B, n_out].
    Raises:
        OnnxUnavailable: onnx is not installed, or the dense form is over MAX_DENSE_PARAMS.
    """
    try:
        # onnx is an optional dependency (the `onnx` extra), imported only when exporting
        import onnx
        from onnx import TensorProto, helper, numpy_helper  # optional, as above
    except ImportError:
        raise OnnxUnavailable("ONNX export needs the onnx package: pip install onnx") from None
    dense = sum(layer.n_out * layer.n_in for layer in net.layers)
    if dense > MAX_DENSE_PARAMS:
        raise OnnxUnavailable(f"the dense form has {dense:,} weights, more than the "
                              f"{MAX_DENSE_PARAMS:,} an ONNX export stores")
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    first = np.zeros((net.n_inputs, net.input_width), dtype=dtype)
    first[np.arange(net.n_inputs), net.input_map] = 1
    inits = [numpy_helper.from_array(first, "input_map")]
    nodes = [helper.make_node("MatMul", ["x", "input_map"], ["h0"])]
    current = "h0"
    for i, layer in enumerate(net.layers):
        inits.append(numpy_helper.from_array(layer.dense().T.astype(dtype), f"W{i}"))
        inits.append(numpy_helper.from_array(layer.bias.astype(dtype), f"b{i}"))
        last = i == len(net.layers) - 1
        pre = f"pre{i + 1}"
        out = "y" if last else f"h{i + 1}"
        nodes.append(helper.make_node("MatMul", [current, f"W{i}"], [f"mm{i + 1}"]))
        nodes.append(helper.make_node("Add", [f"mm{i + 1}", f"b{i}"], [pre if layer.relu else out]))
        if layer.relu:
            nodes.append(helper.make_node("Relu", [pre], [out]))
        current = out
    graph = helper.make_graph(
        nodes, f"sup_{net.circuit_name or net.target}",
        [helper.make_tensor_value_info("x", elem, ["batch", net.n_inputs])],
        [helper.make_tensor_value_info("y", elem, ["batch", net.n_outputs])], inits)
    model = helper.make_model(graph, producer_name="sup",
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def export_onnx(net: Network, path, dtype=np.float32) -> Path:
    """Write `to_onnx(net, dtype)` to `path`.

    Returns:
        The path written.
    Raises:
        OnnxUnavailable: as `to_onnx`.
    """
    model = to_onnx(net, dtype)   # raises OnnxUnavailable when the optional onnx is missing
    import onnx  # optional dependency, present once to_onnx succeeded
    path = Path(path)
    onnx.save(model, str(path))
    return path
