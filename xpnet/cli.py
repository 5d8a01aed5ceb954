"""The ``xpnet`` command line: ``demo``, ``sweep`` and ``info``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import _backends  # light; training, data and plotting modules load in their subcommands

#: The article's settings, the defaults of demo and sweep.
DEFAULTS = dict(backend="auto", epochs=20000, samples=200, noise=0.20, seed=0, lr=0.01, l2=0.01)
SWEEP_SIZES = (1, 2, 3, 4, 5, 20, 50)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of 0 or more, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _shared_options() -> argparse.ArgumentParser:
    """The options demo and sweep share, with the article's defaults."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("training (defaults are the article's)")
    g.add_argument(
        "--backend", choices=("auto", *_backends.BACKENDS), default=DEFAULTS["backend"],
        help="where to train; auto takes CuPy when a CUDA device is usable, else NumPy; a "
        "backend that is not usable falls back to NumPy with a warning (default: %(default)s)",
    )  # fmt: skip
    g.add_argument(
        "--epochs",
        type=_count,
        default=DEFAULTS["epochs"],
        metavar="N",
        help="full-batch gradient descent passes (default: %(default)s)",
    )
    g.add_argument(
        "--samples",
        type=_count,
        default=DEFAULTS["samples"],
        metavar="N",
        help="points drawn by make_moons (default: %(default)s)",
    )
    g.add_argument(
        "--noise",
        type=_non_negative_float,
        default=DEFAULTS["noise"],
        metavar="SD",
        help="make_moons noise, a standard deviation (default: %(default)s)",
    )
    g.add_argument(
        "--seed",
        type=_non_negative_int,
        default=DEFAULTS["seed"],
        metavar="S",
        help="random_state of the data and seed of the initial weights (default: %(default)s)",
    )
    g.add_argument(
        "--lr",
        type=_positive_float,
        default=DEFAULTS["lr"],
        metavar="RATE",
        help="learning rate, the article's epsilon (default: %(default)s)",
    )
    g.add_argument(
        "--l2",
        type=_non_negative_float,
        default=DEFAULTS["l2"],
        metavar="LAMBDA",
        help="L2 strength on the weights, the article's reg_lambda (default: %(default)s)",
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="write figures (PNG) into DIR, created if missing; without it no files are written",
    )
    o.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar and no per-pass loss lines; summaries still print",
    )
    return p


def _prepare_out(args: argparse.Namespace) -> None:
    """Fail before training when figures are asked for but cannot be written."""
    if args.out is None:
        return
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit(
            "xpnet: error: --out needs matplotlib; install it with pip install 'xpnet[plot]'"
        ) from None
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SystemExit(f"xpnet: error: cannot create --out directory {args.out}: {exc}") from None


def _moons(args: argparse.Namespace, random_state: int) -> tuple[Any, Any]:
    from sklearn.datasets import make_moons

    return make_moons(args.samples, noise=args.noise, random_state=random_state)


def _train(args: argparse.Namespace, X: Any, y: Any, hidden: int, callback: Any = None) -> Any:
    from . import _fit

    return _fit.fit(
        X, y, hidden=hidden, epochs=args.epochs, lr=args.lr, l2=args.l2, seed=args.seed,
        backend=args.backend, verbose=not args.quiet, callback=callback,
    )  # fmt: skip


def _save(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


def _demo(args: argparse.Namespace) -> int:
    _prepare_out(args)
    X, y = _moons(args, args.seed)
    print(
        f"xpnet demo: make_moons({args.samples}, noise={args.noise:.2f}, "
        f"random_state={args.seed}), hidden layer of {args.hidden} tanh units"
    )

    def report(i: int, loss: float) -> None:
        from tqdm import tqdm

        tqdm.write(f"Loss after pass {i}: {loss:.6f}", file=sys.stdout)  # keeps the bar intact

    start = time.perf_counter()
    model = _train(args, X, y, args.hidden, callback=None if args.quiet else report)
    seconds = time.perf_counter() - start
    print(f"backend: {model.backend}, device: {model.device}")
    print(f"training accuracy: {model.score(X, y):.3f}")
    print(f"wall time: {seconds:.2f} s")
    if args.out is not None:
        from matplotlib.figure import Figure

        from . import plot

        for name, draw in (
            ("data", lambda ax: plot.data(X, y, ax)),
            ("boundary", lambda ax: plot.decision_boundary(model, X, y, ax)),
            ("loss", lambda ax: plot.loss_curve(model, ax)),
        ):
            fig = Figure(layout="constrained")
            ax = draw(fig.subplots())
            if name == "boundary":
                ax.set_title(f"Decision boundary, hidden layer size {args.hidden}")
            _save(fig, args.out / f"{name}.png")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    _prepare_out(args)
    X, y = _moons(args, args.seed)
    X_test, y_test = _moons(args, args.seed + 1)
    print(
        f"xpnet sweep: make_moons({args.samples}, noise={args.noise:.2f}, "
        f"random_state={args.seed}), held out: random_state={args.seed + 1}, "
        f"{args.epochs} passes"
    )
    from . import _grid

    start = time.perf_counter()
    grid = _grid.fit_many(
        X, y, hidden=list(args.hidden), epochs=args.epochs, lr=args.lr, l2=args.l2,
        seed=args.seed, backend=args.backend, validation=(X_test, y_test),
        verbose=not args.quiet,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    header = ("hidden", "final loss", "train acc", "held-out acc")
    print("  ".join(f"{h:>{w}}" for h, w in zip(header, (6, 10, 9, 12), strict=True)))
    for h, row in zip(args.hidden, grid.results, strict=True):
        line = f"{h:>6}  {row['final_loss']:>10.6f}  "
        if row["status"] == "ok":
            line += f"{row['train_accuracy']:>9.3f}  {row['validation_accuracy']:>12.3f}"
        else:  # a diverged network has no meaningful accuracy; say where it broke instead
            line += row["status"]
        print(line)
    print(f"wall time: {seconds:.2f} s")
    print(f"backend: {grid[0].backend}, device: {grid[0].device}")
    if args.out is not None:
        import matplotlib.pyplot as plt

        from . import plot

        fig = plot.sweep(grid, X, y)
        _save(fig, args.out / "sweep.png")
        plt.close(fig)
    return 0


def _info(args: argparse.Namespace) -> int:
    print(f"{'backend':<17} {'usable':<6} {'version':<10} devices / reason")
    for name, info in _backends.available_backends().items():
        where = ", ".join(info.devices) if info.usable else info.reason
        print(f"{name:<17} {'yes' if info.usable else 'no':<6} {info.version or '-':<10} {where}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xpnet",
        description="A multi-layer perceptron on any array backend (NumPy, CuPy, PyTorch, JAX).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    shared = _shared_options()
    demo = commands.add_parser(
        "demo", parents=[shared],
        help="train the article's network on make_moons; report loss, accuracy and time",
        description="Train the article's 2-3-2 tanh network on make_moons by full-batch "
        "gradient descent, printing the loss every 1000 passes, then the backend, the "
        "training accuracy and the wall time. With --out, also write data.png, "
        "boundary.png and loss.png.",
    )  # fmt: skip
    demo.add_argument(
        "--hidden",
        type=_count,
        default=3,
        metavar="N",
        help="hidden layer size (default: %(default)s)",
    )
    demo.set_defaults(run=_demo)
    sweep = commands.add_parser(
        "sweep", parents=[shared],
        help="train one network per hidden size, all at once, and compare them (the "
        "article's Figure 4)",
        description="Train one network per hidden layer size, all together in one program "
        "(xpnet.fit_many), and print a table: size, final loss, training accuracy and accuracy "
        "on a held-out draw (make_moons with random_state SEED + 1), or, for a network whose "
        "loss stopped being finite, the recorded pass by which it diverged. Then print the "
        "wall time of the whole sweep, the backend and the device. One progress bar covers the "
        "whole sweep (not with --quiet). With --out, also write sweep.png, one decision "
        "boundary per size.",
    )  # fmt: skip
    sweep.add_argument(
        "--hidden",
        type=_count,
        nargs="+",
        default=list(SWEEP_SIZES),
        metavar="N",
        help="hidden layer sizes (default: %(default)s)",
    )
    sweep.set_defaults(run=_sweep)
    info = commands.add_parser(
        "info", help="list the backends, their versions and devices",
        description="List every backend xpnet knows, whether it is usable, its version "
        "and its devices (or why it cannot be used).",
    )  # fmt: skip
    info.set_defaults(run=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
