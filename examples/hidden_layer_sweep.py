"""The article's Figure 4: how the hidden layer's size shapes the boundary.

Run:  python examples/hidden_layer_sweep.py [OUTPUT_DIR]

Small layers capture the trend; large ones start to follow the noise.  The
accuracy on a second draw of the data shows it.  Writes hidden_layer_sweep.png
into OUTPUT_DIR (default: the current directory).
"""

import sys
from pathlib import Path

import matplotlib.pyplot as plt
from sklearn.datasets import make_moons

import xpnet

out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
out.mkdir(parents=True, exist_ok=True)

X, y = make_moons(200, noise=0.20, random_state=0)
X_new, y_new = make_moons(200, noise=0.20, random_state=1)  # unseen points

models = []
print("hidden  training accuracy  accuracy on new points")
for size in (1, 2, 3, 4, 5, 20, 50):
    model = xpnet.fit(X, y, hidden=size, epochs=20000)
    models.append(model)
    print(f"{size:>6}  {model.score(X, y):>17.3f}  {model.score(X_new, y_new):>22.3f}")

fig = xpnet.plot.sweep(models, X, y, resolution=300)
fig.savefig(out / "hidden_layer_sweep.png", dpi=100)
plt.close(fig)
print(f"figure written to {(out / 'hidden_layer_sweep.png').resolve()}")
