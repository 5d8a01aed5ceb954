"""The ``xpnet`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from . import _fit


def _demo(args: argparse.Namespace) -> int:
    from sklearn.datasets import make_moons

    X, y = make_moons(200, noise=0.20, random_state=0)
    print("xpnet demo: make_moons(200, noise=0.20, random_state=0), hidden layer of 3 tanh units")
    start = time.perf_counter()
    model = _fit.fit(
        X, y, hidden=3, backend="auto",
        callback=lambda i, loss: print(f"Loss after pass {i}: {loss:.6f}"),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    print(f"backend: {model.backend}, device: {model.device}")
    print(f"training accuracy: {model.score(X, y):.3f}")
    print(f"wall time: {seconds:.2f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xpnet",
        description="A multi-layer perceptron on any array backend (NumPy, CuPy, PyTorch, JAX).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="train the tutorial's network on make_moons and report loss, accuracy and time",
        description="Train the tutorial's 2-3-2 tanh network on make_moons(200, noise=0.20) "
        "for 20000 full-batch passes on the best available backend (CuPy if a CUDA device "
        "is usable, else NumPy).",
    )
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
