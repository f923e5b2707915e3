"""Figures of the toy models (PNG through matplotlib, an optional dependency: the `plots`
extra, `pip install -e '.[plots]'`). Every function takes the JSON-ready result of a run."""

from __future__ import annotations

from pathlib import Path

from .common import ToyInputError


def _pyplot():
    """matplotlib.pyplot with the file-only Agg backend; ToyInputError when not installed."""
    try:
        import matplotlib  # optional dependency (the `plots` extra): figures only
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # optional dependency, as above
    except ImportError:
        raise ToyInputError("--plot needs matplotlib: pip install -e '.[plots]'") from None
    return plt


def _save(fig, path) -> str:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    except OSError as exc:
        raise ToyInputError(f"cannot write {path}: {exc.strerror}") from None
    return str(path)


def plot_cc(result: dict, path) -> str:
    """L/p against the evaluation p for each trained model (with SNMF and naive), the loss
    split of every model at its training p, and L/p against the scale of a Gaussian M."""
    plt = _pyplot()
    sigma_rows = [r for r in result["rows"] if r["mixing"].startswith("sym:")]
    panels = 3 if len({r["mixing"] for r in sigma_rows}) >= 2 else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2))
    ax = axes[0]
    for curve in result["curves"]:
        ax.plot(curve["eval_ps"], curve["trained"], marker=".",
                label=f"trained {curve['mixing']} (p={curve['trained_p']:g})")
        if curve.get("snmf"):
            ax.plot(curve["eval_ps"], curve["snmf"], ls=":", label=f"SNMF {curve['mixing']}")
    ax.axhline(result["naive"]["closed_form"], color="k", ls="--", label="naive 1/12")
    ax.set_xscale("log")
    ax.set_xlabel("evaluation feature probability p")
    ax.set_ylabel("L / p")
    ax.set_title("CC model: loss per feature")
    ax.legend(fontsize=7)
    bx = axes[1]
    names = [f"{r['mixing']}\np={r['p']:g}" for r in result["rows"]]
    xs = range(len(names))
    bx.bar([x - 0.2 for x in xs], [r["trained"]["relu_term"] for r in result["rows"]], 0.2,
           label="ReLU term R/p")
    bx.bar(list(xs), [r["trained"]["mixing_term"] for r in result["rows"]], 0.2,
           label="mixing term (L-R)/p")
    bx.bar([x + 0.2 for x in xs], [r["trained"]["L_over_p"] for r in result["rows"]], 0.2,
           label="total L/p")
    if any("snmf" in r for r in result["rows"]):
        bx.scatter(list(xs), [r["snmf"]["L_over_p"] if "snmf" in r else float("nan")
                              for r in result["rows"]], marker="x", color="k", zorder=3,
                   label="SNMF L/p")
    bx.axhline(result["naive"]["closed_form"], color="k", ls="--", lw=1)
    bx.axhline(0, color="k", lw=0.5)
    bx.set_xticks(list(xs))
    bx.set_xticklabels(names, fontsize=7)
    bx.set_title("trained model: loss split")
    bx.legend(fontsize=7)
    if panels == 3:
        cx = axes[2]
        rows = sorted(sigma_rows, key=lambda r: float(r["mixing"].split(":")[1]))
        sig = [float(r["mixing"].split(":")[1]) for r in rows]
        cx.plot(sig, [r["trained"]["L_over_p"] for r in rows], marker="o", label="trained")
        if all("snmf" in r for r in rows):
            cx.plot(sig, [r["snmf"]["L_over_p"] for r in rows], marker="x", ls=":",
                    label="SNMF")
        cx.axhline(result["naive"]["closed_form"], color="k", ls="--", label="naive 1/12")
        cx.set_xlabel("scale of a symmetric Gaussian M (off-diagonal std)")
        cx.set_ylabel("L / p")
        cx.set_title("L/p against the scale of M")
        cx.legend(fontsize=7)
    fig.tight_layout()
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_pairs(result: dict, path) -> str:
    """Error rates of the trained models and of sup's compiled network on the pairs task."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for row in result["rows"]:
        labels = [f"compiled\n{result['compiled']['neurons']} neurons", "zero\nmodel"]
        values = [row["compiled"]["input_error_rate"], row["zero_model"]["input_error_rate"]]
        for entry in row["trained"]:
            labels.append(f"trained\n{entry['neurons']} neurons")
            values.append(entry["input_error_rate"])
        axes[0].bar(labels, values)
        axes[0].set_title(f"inputs with a wrong output, Bernoulli(p={row['p']:g})")
        dom = [result["compiled"]["domain"]["wrong_inputs"]] + [
            e["domain"]["wrong_inputs"] for e in row["trained"]]
        axes[1].bar([labels[0]] + labels[2:], dom)
        axes[1].set_title(f"wrong inputs among all {result['compiled']['domain']['inputs']} "
                          f"with <= {result['sparsity']} active")
        break
    fig.tight_layout()
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_autoencoder(result: dict, path) -> str:
    """Per m: exact I of the best construction and of the monosemantic one against the bound
    shape min{p d^m, d p^(1/m)} for each d, and the ratio best / bound shape."""
    plt = _pyplot()
    ms = sorted({c["m"] for c in result["cells"]})
    fig, axes = plt.subplots(len(ms), 2, figsize=(11, 4.2 * len(ms)), squeeze=False)
    for row, m in enumerate(ms):
        ax, bx = axes[row]
        for d in sorted({c["d"] for c in result["cells"] if c["m"] == m}):
            cells = sorted((c for c in result["cells"] if c["m"] == m and c["d"] == d),
                           key=lambda c: c["p"])
            ps = [c["p"] for c in cells]
            line, = ax.plot(ps, [c["best_I"] for c in cells], marker="o", label=f"best, d={d}")
            ax.plot(ps, [c["monosemantic"] for c in cells], ls=":", color=line.get_color(),
                    label=f"monosemantic, d={d}")
            ax.plot(ps, [c["bound_shape"] for c in cells], ls="--", color=line.get_color(),
                    lw=0.8, label=f"min(p d^m, d p^(1/m)), d={d}")
            bx.plot(ps, [c["ratio"] for c in cells], marker="o", color=line.get_color(),
                    label=f"d={d}")
            bx.axvline(d ** -m if m > 1 else 1.0, color=line.get_color(), lw=0.5, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("p")
        ax.set_ylabel("exact I")
        ax.set_title(f"m = {m}, {result['law']} u: exact improvement I")
        ax.legend(fontsize=6, ncol=2)
        bx.set_xscale("log")
        bx.set_xlabel("p (dotted: p = d^-m)")
        bx.set_ylabel("best I / min(p d^m, d p^(1/m))")
        bx.set_title(f"m = {m}: ratio to the bound shape")
        bx.legend(fontsize=7)
    fig.tight_layout()
    out = _save(fig, path)
    plt.close(fig)
    return out
