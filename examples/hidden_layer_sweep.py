"""
The hidden layer's size
=======================

The article's Figure 4: how the hidden layer's size shapes the decision boundary.

Run:  python examples/hidden_layer_sweep.py [OUTPUT_DIR]

Small layers capture the trend; large ones start to follow the noise.  The
accuracy on a second draw of the data shows it.  ``xpnet.fit_many`` trains all
seven networks together, in one program, and reports each one's accuracy on
that draw.  Writes hidden_layer_sweep.png into OUTPUT_DIR (default: the
current directory).
"""

import sys
from pathlib import Path

from sklearn.datasets import make_moons

import xpnet

out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
out.mkdir(parents=True, exist_ok=True)

X, y = make_moons(200, noise=0.20, random_state=0)
X_new, y_new = make_moons(200, noise=0.20, random_state=1)  # unseen points

# A list is a sweep axis: one model per size, all trained at once.
grid = xpnet.fit_many(X, y, hidden=[1, 2, 3, 4, 5, 20, 50], epochs=20000, validation=(X_new, y_new))
print("hidden  training accuracy  accuracy on new points")
for row in grid.results:  # print(grid.results) shows the whole table
    size, train, new = row["hidden"][0], row["train_accuracy"], row["validation_accuracy"]
    print(f"{size:>6}  {train:>17.3f}  {new:>22.3f}")

# The grid is a sequence of ordinary models; plot.sweep draws one panel each.
# (plot.sweep([1, 2, 3], X, y, fit={"epochs": 20000}) would train them itself.)
fig = xpnet.plot.sweep(grid, X, y, resolution=300)
fig.savefig(out / "hidden_layer_sweep.png", dpi=100)
print(f"figure written to {(out / 'hidden_layer_sweep.png').resolve()}")
