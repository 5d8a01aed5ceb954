"""
The article end to end
======================

The moons data, a 3-unit hidden layer, its loss and its decision boundary, as in the
article ("Build an Artificial Neural Network From Scratch: Part 2", KDnuggets).

Run:  python examples/moons_one_hidden_layer.py [OUTPUT_DIR]

Writes moons_data.png, moons_boundary.png and moons_loss.png into OUTPUT_DIR
(default: the current directory).
"""

import sys
from pathlib import Path

from sklearn.datasets import make_moons

import xpnet

out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
out.mkdir(parents=True, exist_ok=True)

# The data (the article's Figure 1): two interleaved half moons, with noise.
X, y = make_moons(200, noise=0.20, random_state=0)
ax = xpnet.plot.data(X, y)
ax.set_title("make_moons(200, noise=0.20)")
ax.figure.savefig(out / "moons_data.png", dpi=100)

# The network: 2 inputs, 3 tanh units, a softmax over 2 classes, trained by
# 20000 passes of full-batch gradient descent with the article's settings.
model = xpnet.fit(
    X, y, hidden=3, activation="tanh", epochs=20000, lr=0.01, l2=0.01, seed=0,
    callback=lambda i, loss: print(f"Loss after iteration {i}: {loss:f}"),
)  # fmt: skip
print(f"trained on {model.backend} ({model.device}); training accuracy {model.score(X, y):.3f}")

# The decision boundary (the article's Figure 3) and the loss along the way.
ax = xpnet.plot.decision_boundary(model, X, y)
ax.set_title("Decision Boundary for hidden layer size 3")
ax.figure.savefig(out / "moons_boundary.png", dpi=100)
xpnet.plot.loss_curve(model).figure.savefig(out / "moons_loss.png", dpi=100)
print(f"figures written to {out.resolve()}")
