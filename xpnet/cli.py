"""The ``xpnet`` command line: ``demo``, ``sweep`` and ``info``.

Exit status (also in ``xpnet --help``): 0 when it worked; 1 when training
failed (the loss stopped being finite, or ``demo`` ended above its starting
loss), the device ran out of memory, the backend is not usable and
``--no-fallback`` was given, or the figures cannot be written; 2 for bad
options; 130 after Ctrl-C; 141 when the reader of stdout went away early
(``xpnet demo | head -2``), as a shell reports a program that SIGPIPE ended.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from . import _backends  # light; training, data and plotting modules load in their subcommands
from ._exceptions import (
    BackendUnavailableError,
    DeviceMemoryError,
    DivergenceError,
    DivergenceWarning,
    TrainingInterruptedWarning,
)

#: The article's settings, the defaults of demo and sweep.
DEFAULTS = dict(backend="auto", epochs=20000, samples=200, noise=0.20, seed=0, lr=0.01, l2=0.01)
SWEEP_SIZES = (1, 2, 3, 4, 5, 20, 50)

EXIT_STATUS = """exit status:
  0    done
  1    training failed (the loss stopped being finite, or demo's final loss is above its
       first), the device ran out of memory, --no-fallback with an unusable backend, or
       the figures cannot be written
  2    bad options
  130  interrupted (Ctrl-C)
  141  stdout was closed early (xpnet demo | head), as for a program ended by SIGPIPE"""


def _int_from(minimum: int, says: str) -> Any:
    """An argparse type: an int of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {says}, got {value}")
        return value

    return parse


_count = _int_from(1, "at least 1")
_non_negative_int = _int_from(0, "0 or more")


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


#: The training options demo and sweep share: flag, type, metavar, help (the default follows).
_TRAINING = (
    ("--epochs", _count, "N", "full-batch gradient descent passes"),
    ("--samples", _count, "N", "points drawn by make_moons"),
    ("--noise", _non_negative_float, "SD", "make_moons noise, a standard deviation"),
    ("--seed", _non_negative_int, "S", "random_state of the data and seed of the initial weights"),
    ("--lr", _positive_float, "RATE", "learning rate, the article's epsilon"),
    ("--l2", _non_negative_float, "LAMBDA", "L2 strength on the weights, the article's reg_lambda"),
)


def _shared_options(**hidden: Any) -> argparse.ArgumentParser:
    """The options demo and sweep share, with the article's defaults; ``hidden`` holds the
    command's own ``add_argument`` settings of ``--hidden``, listed with the training options."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("training (defaults are the article's)")
    g.add_argument(
        "--backend", choices=("auto", *_backends.BACKENDS), default=DEFAULTS["backend"],
        help="where to train; auto takes CuPy when a CUDA device is usable and a pass is "
        "estimated cheaper there, else NumPy (and says why); a backend that is not usable "
        "falls back to NumPy with a warning (default: %(default)s)",
    )  # fmt: skip
    g.add_argument(
        "--no-fallback",
        dest="fallback",
        action="store_false",
        help="make a --backend that is not usable an error (exit status 1) instead of "
        "training on NumPy",
    )
    g.add_argument("--hidden", type=_count, metavar="N", **hidden)
    for flag, kind, metavar, text in _TRAINING:
        help = f"{text} (default: %(default)s)"
        g.add_argument(flag, type=kind, default=DEFAULTS[flag[2:]], metavar=metavar, help=help)
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
            "xpnet: error: --out needs matplotlib; install it with pip install matplotlib "
            "(from a clone of xpnet: pip install '.[plot]')"
        ) from None
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SystemExit(f"xpnet: error: cannot create --out directory {args.out}: {exc}") from None


def _moons(args: argparse.Namespace, random_state: int) -> tuple[Any, Any]:
    from sklearn.datasets import make_moons

    return make_moons(args.samples, noise=args.noise, random_state=random_state)


def _backend(args: argparse.Namespace) -> str:
    """The backend to train on: ``--backend``, or NumPy when that one is not usable.

    Decided here rather than by the library's fallback, whose messages speak of
    Python arguments; ``--no-fallback`` makes an unusable backend an error.
    """
    if args.backend == "auto":
        return "auto"
    info = _backends.probe(args.backend)
    if info.usable:
        return args.backend
    reason = " ".join(str(info.reason).split())
    if not args.fallback:
        raise _Failure(
            f"backend {args.backend!r} is not available: {reason}; see xpnet info for the "
            "usable backends, or leave out --no-fallback to train on NumPy"
        )
    _say(
        f"warning: backend {args.backend!r} is not available: {reason}; training on NumPy "
        "instead (--backend numpy avoids this warning, --no-fallback makes it an error)"
    )
    return "numpy"


def _train(args: argparse.Namespace, X: Any, y: Any, hidden: int, callback: Any = None) -> Any:
    from . import _fit

    return _fit.fit(
        X, y, hidden=hidden, epochs=args.epochs, lr=args.lr, l2=args.l2, seed=args.seed,
        backend=_backend(args), fallback=False, verbose=not args.quiet, callback=callback,
    )  # fmt: skip


def _save(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


def _demo(args: argparse.Namespace) -> int:
    _prepare_out(args)
    X, y = _moons(args, args.seed)
    print(
        f"xpnet demo: make_moons({args.samples}, noise={args.noise:.2f}, "
        f"random_state={args.seed}), hidden layer of {args.hidden} tanh units",
        flush=True,  # the first sign of life, even through a pipe
    )

    def report(i: int, loss: float) -> None:
        from tqdm import tqdm

        tqdm.write(f"Loss after pass {i}: {loss:.6f}", file=sys.stdout)  # keeps the bar intact

    start = time.perf_counter()
    model = _train(args, X, y, args.hidden, callback=None if args.quiet else report)
    seconds = time.perf_counter() - start
    if model.stopped == "interrupted":  # fit caught Ctrl-C: say where it stopped, draw nothing
        if not model.loss_curve:
            _say("interrupted before the first pass ended")
        else:  # the loss curve ends at the last finished pass
            done, loss = model.loss_curve[-1]
            _say(f"interrupted after {done + 1} of {args.epochs} passes, loss {loss:.6f}")
        return 130
    print(f"backend: {model.backend}, device: {model.device}")
    if model.backend_reason:
        print(f"  ({model.backend_reason})")
    print(f"training accuracy: {model.score(X, y):.3f}")
    print(f"wall time: {seconds:.2f} s")
    failed = args.held_warnings.pop(DivergenceWarning)
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
    for message in failed:  # last, after the summary: why the exit status is 1
        _say(f"warning: {message}")
    return 1 if failed else 0


def _sweep(args: argparse.Namespace) -> int:
    _prepare_out(args)
    X, y = _moons(args, args.seed)
    X_test, y_test = _moons(args, args.seed + 1)
    print(
        f"xpnet sweep: make_moons({args.samples}, noise={args.noise:.2f}, "
        f"random_state={args.seed}), held out: random_state={args.seed + 1}, "
        f"{args.epochs} passes",
        flush=True,
    )
    from . import _fit_many

    start = time.perf_counter()
    grid = _fit_many.fit_many(
        X, y, hidden=list(args.hidden), epochs=args.epochs, lr=args.lr, l2=args.l2,
        seed=args.seed, backend=_backend(args), fallback=False, validation=(X_test, y_test),
        verbose=not args.quiet,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if any(grid[i].stopped == "interrupted" for i in range(len(grid))):
        _say("interrupted")
        return 130
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
    # The table says which models failed; the sweep itself did its job.
    for message in args.held_warnings.pop(DivergenceWarning):
        _say(f"warning: {message}")
    return 0


def _info(args: argparse.Namespace) -> int:
    print(f"{'backend':<17} {'usable':<6} {'version':<10} devices / reason")
    for name, info in _backends.available_backends().items():
        where = ", ".join(info.devices) if info.usable else info.reason
        print(f"{name:<17} {'yes' if info.usable else 'no':<6} {info.version or '-':<10} {where}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="xpnet",
        description="A multi-layer perceptron on any array backend (NumPy, CuPy, PyTorch, JAX).",
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    size = _shared_options(default=3, help="hidden layer size (default: %(default)s)")
    demo = commands.add_parser(
        "demo", parents=[size],
        help="train the article's network on make_moons; report loss, accuracy and time",
        description="Train a 2-H-2 tanh network, H hidden units from --hidden (default 3, the "
        "article's network), on make_moons by full-batch gradient descent, printing the loss "
        "every 1000 passes, then the backend, the training accuracy and the wall time. With "
        "--out, also write data.png, boundary.png and loss.png.",
    )  # fmt: skip
    demo.set_defaults(run=_demo)
    sizes = _shared_options(
        nargs="+", default=list(SWEEP_SIZES), help="hidden layer sizes (default: %(default)s)"
    )
    sweep = commands.add_parser(
        "sweep", parents=[sizes],
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
    sweep.set_defaults(run=_sweep)
    info = commands.add_parser(
        "info", help="list the backends, their versions and devices",
        description="List every backend xpnet knows, whether it is usable, its version "
        "and its devices (or why it cannot be used).",
    )  # fmt: skip
    info.set_defaults(run=_info)
    return parser


class _Failure(Exception):
    """A failure the command line reports as ``xpnet: error: <message>``, exit status 1."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _say(text: str) -> None:
    """``xpnet: <text>`` on stderr, one line, after what stdout holds (in a log of both
    streams it lands where it happened)."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_to_devnull()
    with contextlib.suppress(BrokenPipeError):  # stderr piped to a reader that left
        print(f"xpnet: {_one_line(text)}", file=sys.stderr, flush=True)


class _HeldWarnings:
    """Warnings kept back by category, for a command to report at its end."""

    def __init__(self, categories: tuple[type[Warning], ...]) -> None:
        self.categories = categories
        self.held: list[tuple[type[Warning], str]] = []

    def pop(self, category: type[Warning]) -> list[str]:
        """The messages held of ``category``, which are then forgotten."""
        taken = [m for c, m in self.held if issubclass(c, category)]
        self.held = [(c, m) for c, m in self.held if not issubclass(c, category)]
        return taken


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


@contextlib.contextmanager
def _warnings_as_lines(held: _HeldWarnings) -> Iterator[None]:
    """Show xpnet's warnings as ``xpnet: warning: <message>`` lines, without file:line.

    Those of ``held.categories`` are kept for the command to report; the
    interruption warning is dropped, as the command reports Ctrl-C itself.
    Other libraries' warnings keep Python's format, which says whose they are.
    """
    with warnings.catch_warnings():
        default = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            ours = category.__module__.startswith("xpnet.")
            ours = ours or os.path.abspath(filename).startswith(_PACKAGE)
            if not ours:
                default(message, category, filename, lineno, file, line)
            elif issubclass(category, TrainingInterruptedWarning):
                pass
            elif issubclass(category, held.categories):
                held.held.append((category, _one_line(message)))
            else:
                _say(f"warning: {message}")

        warnings.showwarning = show
        yield


def _stdout_to_devnull() -> None:
    """Point stdout at the null device, so that the flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # stdout is not a file (embedded, captured)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (listed in ``xpnet --help``)."""
    try:
        args = build_parser().parse_args(argv)
        args.held_warnings = _HeldWarnings((DivergenceWarning,))
        with _warnings_as_lines(args.held_warnings):
            status = args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, where it is handled, not at exit
        return status
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except BrokenPipeError:  # the reader went away: nothing more to say, to anyone
        _stdout_to_devnull()
        return 141
    except DivergenceError as exc:
        _say(f"error: {_diverged(exc, args)}")
        return 1
    except (DeviceMemoryError, BackendUnavailableError, _Failure) as exc:
        _say(f"error: {exc}")
        return 1


def _diverged(exc: DivergenceError, args: argparse.Namespace) -> str:
    """The divergence, with advice in terms of options (the error's own speaks of Python)."""
    text = f"training diverged: the loss is {exc.loss} after pass {exc.epoch}"
    if exc.history:
        first, loss = exc.history[0]
        text += f" (it was {loss:.6g} after pass {first})"
    return f"{text}; lower --lr (it is {args.lr:g})"


if __name__ == "__main__":
    sys.exit(main())
