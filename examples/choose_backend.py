"""
Choosing a backend
==================

One script, several array libraries: the same network on NumPy, CuPy and PyTorch.

Run:  python examples/choose_backend.py [OUTPUT_DIR]

A backend that is not installed or has no usable device falls back to NumPy with
a BackendFallbackWarning (shown below); fallback=False raises instead.  The
models agree whichever library trained them (1000 passes: past about 1200 the
article's step is large enough that rounding differences grow).  Writes choose_backend.png into
OUTPUT_DIR (default: the current directory).
"""

import sys
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
from sklearn.datasets import make_moons

import xpnet

out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
out.mkdir(parents=True, exist_ok=True)

print("backends on this machine:")
for name, info in xpnet.available_backends().items():
    print(f"  {name:<17} {', '.join(info.devices) if info.usable else info.reason}")

X, y = make_moons(200, noise=0.20, random_state=0)
models = {}
for backend in ("numpy", "cupy", "torch"):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", xpnet.BackendFallbackWarning)
        model = xpnet.fit(X, y, hidden=3, epochs=1000, backend=backend)
    for w in caught:
        print(f"asked for {backend}: {w.category.__name__}: {w.message}")
    models[backend] = model
    print(
        f"asked for {backend:<6} trained on {model.backend} ({model.device}): "
        f"loss {model.loss_curve[-1][1]:.6f}, accuracy {model.score(X, y):.3f}"
    )

# fallback=False: an unusable backend is an error, not a silent change of library.
for name, info in xpnet.available_backends().items():
    if not info.usable:
        try:
            xpnet.fit(X, y, epochs=1, backend=name, fallback=False)
        except xpnet.BackendUnavailableError as exc:
            print(f"fallback=False with {name}: BackendUnavailableError: {str(exc)[:90]}...")
        break

# A model moves between libraries; its predictions follow the data's library.
torch_model = models["torch"]
numpy_copy = torch_model.to("numpy")
print(
    f"moved {torch_model.backend} -> {numpy_copy.backend}: same predictions:",
    bool((numpy_copy.predict(X) == models["numpy"].predict(X)).all()),
)

fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 3.6), layout="constrained")
for ax, (asked, model) in zip(axes, models.items(), strict=True):
    xpnet.plot.decision_boundary(model, X, y, ax, resolution=300)
    ax.set_title(f"asked {asked}, ran on {model.backend}")
fig.savefig(out / "choose_backend.png", dpi=100)
print(f"figure written to {(out / 'choose_backend.png').resolve()}")
