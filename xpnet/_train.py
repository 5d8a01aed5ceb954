"""Training as data: one plain state, pure updates, and the one loop that owns the stop rules.

Training is a fold over a state, ``state = update(state, batch)``, and after
each epoch the stop rules read the state.  :class:`TrainState` holds all that
training needs to continue (parameters, optimizer state, counters, the shuffle
generator and permutation, the history, the no-improvement counter and the best
parameters), as arrays, numbers and tuples.  :func:`run` is the loop for
:func:`xpnet.fit`, :func:`xpnet.fit_many` and both estimators: what differs
between them is data (a :class:`Problem` and its :class:`Rules`), not code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from . import _target
from ._optim import Optimizer, OptState
from ._steps import Step
from ._validation import check_batch_weights, is_sparse

# An observer: (event, state, detail) for "epoch" (detail: the recorded loss or None),
# "validation" (the score) and "plateau" (scikit-learn's message).  Observers never change
# the state.
Observer = Callable[[str, "TrainState", Any], Any]


# -- the state -------------------------------------------------------------------------------
class Shuffle(NamedTuple):
    """The shuffle of mini-batches: a host generator's state and the current order.

    ``generator`` is ``numpy.random.RandomState.get_state()``; each epoch
    draws scikit-learn's permutation (``sklearn.utils.shuffle`` of the
    previous ``order``) from it.
    """

    generator: tuple
    order: np.ndarray


class TrainState(NamedTuple):
    """Everything training needs to continue, as plain data.

    Attributes
    ----------
    params : list of (W, b)
        On the training device; with a leading model axis for a stack.
    opt : OptState
        The optimizer's step count, step size and moments or velocities.
    epoch : int
        Epochs (full-batch passes) completed since initialisation.
    samples : int
        Samples seen since initialisation (scikit-learn's ``t_``).
    shuffle : Shuffle or None
        The mini-batch shuffle, or None to take the rows in order.
    history : tuple of (int, loss)
        The recorded ``(epoch index, loss)`` pairs; a loss is a float, or a
        NumPy array of one loss per model for a stack.
    no_improvement : int
        Consecutive epochs without improvement by ``tol``.
    best_loss : float
        The lowest recorded loss (``inf`` before any).
    scores : tuple of float
        Validation scores, one per epoch, when early stopping.
    best_score : float
        The highest validation score (``-inf`` before any).
    best_params : list of (W, b) or None
        The parameters of the best validation score.
    diverged : numpy.ndarray or None
        For a stack, the epoch index at which each model's loss stopped being
        finite, -1 while it is finite; None for one model.
    stopped : str or None
        Why the last run stopped early ("plateau", "one epoch", "diverged",
        "interrupted"), None when it ran all its epochs.
    """

    params: list
    opt: OptState
    epoch: int = 0
    samples: int = 0
    shuffle: Shuffle | None = None
    history: tuple = ()
    no_improvement: int = 0
    best_loss: float = math.inf
    scores: tuple = ()
    best_score: float = -math.inf
    best_params: list | None = None
    diverged: np.ndarray | None = None
    stopped: str | None = None

    @property
    def losses(self) -> list:
        """The recorded losses, without their epoch indices."""
        return [loss for _, loss in self.history]


def start(
    params: list, optimizer: Optimizer, xp: Any, *, n_models: int | None = None
) -> TrainState:
    """A fresh state: ``optimizer.init`` of ``params``, counters at zero, rows in order.

    With ``n_models`` the state tracks divergence per model.
    """
    diverged = None if n_models is None else np.full(n_models, -1)
    return TrainState(params, optimizer.init(xp, params), diverged=diverged)


# -- the data of one run -------------------------------------------------------------------
class Data(NamedTuple):
    """The training data on the device (a host SciPy sparse X is densified per batch).

    ``Y`` may be boolean (one-hot labels); batches then come in ``dtype``.
    ``risky_weights``, when given, are the sample weights on the host where a
    batch's could sum to zero (see :func:`_validation.batch_weight_risk`): each
    epoch checks its batches before the first step.
    """

    target: _target.Target
    X: Any
    Y: Any
    sample_weight: Any
    batch_size: int
    dtype: Any = None
    risky_weights: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.Y.shape[0]

    def whole(self, shuffle: Shuffle | None) -> bool:
        """Whether every epoch is one batch of all the rows, in order, without weights."""
        plain = shuffle is None and self.sample_weight is None and not is_sparse(self.X)
        return plain and self.batch_size >= self.n

    def epoch(self, shuffle: Shuffle | None) -> tuple[Shuffle | None, Iterator]:
        """The next shuffle state and the epoch's ``(X, Y, sample_weight, size)`` batches."""
        shuffle, order = self.order(shuffle)
        n = self.Y.shape[0]
        if order is None and self.batch_size >= n and not is_sparse(self.X):
            # all of it, no copies (but the labels', when they are kept as booleans)
            return shuffle, ((self.X, self._labels(self.Y), self.sample_weight, n),)
        return shuffle, self._batches(order)

    def order(self, shuffle: Shuffle | None) -> tuple[Shuffle | None, np.ndarray | None]:
        """The next shuffle state and the epoch's order of the rows (None: as they are).

        Batches whose sample weights could sum to zero are checked here, before the
        epoch's first step.
        """
        if shuffle is not None:
            from sklearn.utils import shuffle as permute

            rng = np.random.RandomState()
            rng.set_state(shuffle.generator)
            order = permute(shuffle.order, random_state=rng)
            shuffle = Shuffle(rng.get_state(), order)
        order = None if shuffle is None else shuffle.order
        if self.risky_weights is not None:
            check_batch_weights(
                self.risky_weights, order, self.batch_size, shuffled=shuffle is not None
            )
        return shuffle, order

    def in_one_call(self, step: Step | None) -> bool:
        """Whether an epoch's batches go to ``step.batches`` as one call: a step that has
        them, and at least two full batches of dense rows."""
        batched = step is not None and step.batches is not None and not is_sparse(self.X)
        return batched and self.n // self.batch_size >= 2

    def taken(self, index: Any) -> tuple[Any, Any, Any]:
        """The rows ``index`` (on the device) of X, the targets and the weights."""
        xp = self.target.xp
        sw = None if self.sample_weight is None else xp.take(self.sample_weight, index, axis=0)
        return xp.take(self.X, index, axis=0), self._labels(xp.take(self.Y, index, axis=0)), sw

    def _labels(self, Y: Any) -> Any:
        """Targets in the training dtype: one-hot labels may be kept as booleans, a byte each
        (a float64 copy of 200,000 x 10 labels is 16 MB), and are cast a batch at a time."""
        if self.dtype is None or Y.dtype == self.dtype:
            return Y
        return self.target.xp.astype(Y, self.dtype)

    def _batches(self, order: np.ndarray | None) -> Iterator:
        n, size = self.n, self.batch_size
        idx = None if order is None else self.target.asarray(order)
        for begin in range(0, n, size):
            end = min(begin + size, n)
            X = self._rows(self.X, idx, order, begin, end)
            Y = self._labels(self._rows(self.Y, idx, order, begin, end))
            sw = self._rows(self.sample_weight, idx, order, begin, end)
            yield X, Y, sw, end - begin

    def _rows(self, a: Any, idx: Any, order: Any, begin: int, end: int) -> Any:
        if a is None:
            return None
        if is_sparse(a):
            rows = a[order[begin:end]] if order is not None else a[begin:end]
            return self.target.asarray(rows.toarray(), self.dtype)
        if idx is None:
            return a[begin:end, ...]
        return self.target.xp.take(a, idx[begin:end], axis=0)


# -- the loop --------------------------------------------------------------------------------
class Problem(NamedTuple):
    """What one run trains on; fixed for the run.

    ``evaluate(params)`` gives the loss recorded at log points when the step
    returns none (a float, or one per model as a NumPy array), and
    ``validation_score(params)`` the early-stopping score.  A ``step`` that
    declares ``passes`` (see :class:`xpnet._steps.Step`) runs the full-batch
    passes between two log points as one call.
    ``epoch``, when given, runs a whole epoch as one call in place of the
    steps over ``data``'s batches (a Dask epoch is one graph): it returns the
    state after the epoch, its ``epoch``, ``samples``, ``shuffle``, ``params``
    and ``opt`` moved on, and the epoch's mean batch loss.
    """

    data: Data
    optimizer: Optimizer
    step: Step | None
    evaluate: Callable[[list], Any] | None = None
    validation_score: Callable[[list], float] | None = None
    epoch: Callable[[TrainState], tuple[TrainState, float]] | None = None


class Rules(NamedTuple):
    """When to record, and when to stop.

    Attributes
    ----------
    epochs : int
        Epochs to run in this call at most.
    log_every : int or None
        Record ``evaluate(params)`` after every epoch whose index is a multiple
        of ``log_every`` (the first included) and after the run's last; None
        records the epoch's mean batch loss after every epoch.  The log points
        depend on the epoch count in the state, so a resumed run records where
        an uninterrupted one does.
    tol : float or None
        Count epochs without improvement by ``tol`` (of the loss, or of the
        validation score when ``problem.validation_score`` is set); after more
        than ``n_iter_no_change`` of them the optimizer's ``plateau`` decides
        whether to stop.  None never stops early.
    n_iter_no_change : float
    one_epoch : bool
        Stop after one epoch (scikit-learn's partial_fit).
    divergence : {"raise", "mark", "stop", "ignore"}
        On a non-finite loss: raise :class:`~xpnet.DivergenceError` (after
        replaying the passes since the last finite recorded loss, one by one,
        to name the first non-finite pass and keep the parameters before it);
        mark the model in ``state.diverged`` and train the others on; stop; or
        train on.
    interruptible : bool
        On KeyboardInterrupt, return the state of the last finished step, with
        ``stopped="interrupted"``, instead of raising (the caller warns).
    checkpoint_every : int or None
        With a ``save`` function given to :func:`run`: save the state after
        every epoch whose count is a multiple of this, and at the end.
    """

    epochs: int
    log_every: int | None = None
    tol: float | None = None
    n_iter_no_change: float = 10
    one_epoch: bool = False
    divergence: str = "stop"
    interruptible: bool = False
    checkpoint_every: int | None = None


def run(
    state: TrainState,
    problem: Problem,
    rules: Rules,
    observe: Observer | None = None,
    save: Callable[[TrainState], Any] | None = None,
) -> TrainState:
    """Train from ``state`` by ``problem`` under ``rules``; the state after the run.

    ``observe(event, state, detail)`` sees each epoch's end ("epoch", with the
    loss recorded then, or None), each validation score ("validation", with
    the score) and each plateau ("plateau", with the message); it cannot
    change the state.  ``save(state)``, when given, writes a checkpoint every
    ``rules.checkpoint_every`` epochs and at the end of the run (unless it
    diverged).
    """
    data, optimizer = problem.data, problem.optimizer
    last, log_every = state.epoch + rules.epochs - 1, rules.log_every
    every = rules.checkpoint_every if save is not None else None
    state = state._replace(stopped=None)
    # Passes that record nothing and meet no stop rule can run as one call.
    step = problem.step
    runs = step is not None and step.passes is not None and log_every is not None
    runs = runs and rules.tol is None
    runs = runs and not rules.one_epoch and optimizer.fixed_rate() and data.whole(state.shuffle)
    length, saved = 8, state.epoch
    finite = state  # the state at the last recorded finite loss (or the start)
    try:
        with data.target.activate(), data.target.threads_for(_elements(state.params, data)):
            while state.stopped is None and state.epoch <= last:
                to_log = _next_log(state.epoch, log_every, last) - state.epoch if runs else 0
                if every is not None:  # a checkpoint falls between two passes
                    to_log = min(to_log, (state.epoch // every + 1) * every - state.epoch)
                if to_log > 0:
                    began, m = time.perf_counter(), min(length, to_log)
                    state = _passes(state, problem, m)
                    length = _next_length(length, time.perf_counter() - began)
                    events = [("epoch", state, None)] * m
                else:
                    epoch = state.epoch
                    state, loss = _epoch(state, problem, log_every, last)
                    finite_loss = loss is None or np.all(np.isfinite(loss))
                    if not finite_loss and rules.divergence == "raise":
                        _raise_divergence(finite, problem, epoch, loss)
                    state, events = _epoch_end(state, problem, rules, epoch, loss)
                    if loss is not None and finite_loss:
                        finite = state
                if every is not None and state.epoch % every == 0 and state.stopped is None:
                    save(state)
                    saved = state.epoch
                if observe is not None:  # every pass, after the state is kept
                    for event, seen, detail in events:
                        observe(event, seen, detail)
    except KeyboardInterrupt:
        if not rules.interruptible:
            raise
        state = state._replace(stopped="interrupted")
    finally:
        if step is not None and step.release is not None:  # a fast step's buffers
            step.release()
    if save is not None and state.epoch != saved and state.stopped != "diverged":
        save(state)
    return state


def _epoch(
    state: TrainState, problem: Problem, log_every: int | None, last: int
) -> tuple[TrainState, Any]:
    """One epoch of steps over the batches; the state after it, and the loss to record.

    The loss is the epoch's mean batch loss when the step reports one, else
    ``problem.evaluate`` at the log points, else None.
    """
    if problem.epoch is not None:
        return problem.epoch(state)
    data, optimizer = problem.data, problem.optimizer
    if data.in_one_call(problem.step):
        return _epoch_in_one_call(state, problem)
    shuffle, batches = data.epoch(state.shuffle)
    if shuffle is not None:
        state = state._replace(shuffle=shuffle)
    total = None
    for X, Y, sw, size in batches:
        lr = optimizer.step_size(state.opt)
        params, slots, loss = problem.step(state.params, state.opt.slots, X, Y, sw, lr)
        state = state._replace(params=params, opt=optimizer.advance(state.opt, lr, slots))
        if loss is not None:
            total = loss * size if total is None else total + loss * size
    epoch = state.epoch
    state = state._replace(epoch=epoch + 1, samples=state.samples + data.n)
    if total is not None:
        return state, float(_target.to_host(total)) / data.n
    if log_every is not None and (epoch % log_every == 0 or epoch == last):
        return state, problem.evaluate(state.params)
    return state, None


def _epoch_in_one_call(state: TrainState, problem: Problem) -> tuple[TrainState, float]:
    """One epoch as :func:`_epoch` takes it, the full batches in one call of the step's
    ``batches`` (a compiled scan on JAX, buffers that persist through it on torch), the
    short last batch apart; the loss read once."""
    data, optimizer, step = problem.data, problem.optimizer, problem.step
    shuffle, order = data.order(state.shuffle)
    if shuffle is not None:
        state = state._replace(shuffle=shuffle)
    n, size = data.n, data.batch_size
    full = n // size
    # the step sizes of the full batches, as the optimizer's state would go through them
    opt, rates = state.opt, []
    for _ in range(full):
        rates.append(optimizer.step_size(opt))
        opt = optimizer.advance(opt, rates[-1], opt.slots)
    target, xp = data.target, data.target.xp
    index = target.asarray(np.arange(n) if order is None else order)
    lrs = target.asarray(np.asarray(rates, dtype=_target.dtype_name(data.X.dtype)))
    batches = xp.reshape(index[: full * size], (full, size))
    params, slots, total = step.batches(
        state.params, state.opt.slots, data.X, data.Y, data.sample_weight, batches, lrs
    )
    state = state._replace(params=params, opt=opt._replace(slots=slots))
    if full * size < n:  # the short last batch
        X, Y, sw = data.taken(index[full * size :])
        lr = optimizer.step_size(state.opt)
        params, slots, loss = step(state.params, state.opt.slots, X, Y, sw, lr)
        state = state._replace(params=params, opt=optimizer.advance(state.opt, lr, slots))
        total = total + loss * (n - full * size)
    state = state._replace(epoch=state.epoch + 1, samples=state.samples + n)
    return state, float(_target.to_host(total)) / n


def _raise_divergence(finite: TrainState, problem: Problem, epoch: int, loss: Any) -> None:
    """Raise DivergenceError for a non-finite loss recorded after pass ``epoch``.

    The passes since ``finite`` (the state of the last finite recorded loss)
    are replayed one at a time, each evaluated, to find the first whose loss is
    not finite and keep the parameters before it: training is deterministic,
    so the replay retraces the run.
    """
    from ._exceptions import DivergenceError

    history, before = finite.history, finite
    bad, bad_loss = epoch, loss
    if problem.evaluate is not None:
        state = finite
        while state.epoch < epoch:
            following, _ = _epoch(state, problem, None, epoch)
            replayed = problem.evaluate(following.params)
            if not np.all(np.isfinite(replayed)):
                bad, bad_loss = state.epoch, replayed
                break
            state = following
        before = state
    last = f"; it was {history[-1][1]:.6g} after pass {history[-1][0]}" if history else ""
    passes = f"pass {bad - 1}" if bad > 0 else "initialisation"
    rate = problem.optimizer.step_size(before.opt)
    raise DivergenceError(
        f"training diverged: the loss is {float(bad_loss)} after pass {bad}{last}. Lower the "
        f"learning rate (lr={float(rate):g}) or scale the features; the error's .params "
        f"hold the parameters after {passes}, the last with a finite loss.",
        epoch=bad,
        loss=float(bad_loss),
        params=_target.host_tree(before.params),
        history=list(history),
    )


def _elements(params: list, data: Data) -> int:
    """The size of the largest layer output of a batch, all models of a stack together."""
    batch = min(data.batch_size, data.n)
    return batch * max(math.prod(W.shape) // W.shape[-2] for W, _ in params)


def _next_log(epoch: int, log_every: int, last: int) -> int:
    """The first epoch from ``epoch`` on whose loss is recorded."""
    return min(-(-epoch // log_every) * log_every, last)


def _next_length(length: int, seconds: float) -> int:
    """How many passes the next repeated call runs: about a tenth of a second's worth.

    Short calls keep the progress bar moving and Ctrl-C prompt (a call is not
    interrupted midway: its passes are lost, and the state before it stays).
    """
    if seconds < 0.05:
        return length * 2
    if seconds > 0.2 and length > 1:
        return length // 2
    return length


def _passes(state: TrainState, problem: Problem, m: int) -> TrainState:
    """``m`` passes that record no loss, as one call of the step's ``passes``."""
    data, opt = problem.data, state.opt
    lr = problem.optimizer.step_size(opt)
    params, slots = problem.step.passes(state.params, opt.slots, data.X, data.Y, None, lr, m)
    state = state._replace(
        params=params,
        opt=opt._replace(count=opt.count + m, learning_rate=lr, slots=slots),
        epoch=state.epoch + m,
        samples=state.samples + m * data.n,
    )
    return state


def _epoch_end(
    state: TrainState,
    problem: Problem,
    rules: Rules,
    epoch: int,
    loss: Any,
) -> tuple[TrainState, list]:
    """Record the epoch's loss and apply the stop rules: the state after, and the
    ``(event, state, detail)`` triples for the observers.

    The observers are called by :func:`run` once the state is kept, so that an
    observer that raises (Ctrl-C in a callback) loses nothing of the epoch.
    """
    events: list = []
    if loss is not None:
        state = state._replace(history=(*state.history, (epoch, loss)))
        if not np.all(np.isfinite(loss)):
            state = _diverged(state, rules, epoch, loss)
    scored = len(state.scores)
    if loss is not None and rules.tol is not None and state.stopped is None:
        state = _count_no_improvement(state, problem, rules.tol, loss)
    events.append(("epoch", state, loss))
    if len(state.scores) > scored:
        events.append(("validation", state, state.scores[-1]))
    if state.stopped is not None:
        return state, events
    optimizer = problem.optimizer
    opt = optimizer.epoch_end(state.opt, state.samples)
    if opt is not state.opt:
        state = state._replace(opt=opt)
    if rules.tol is not None and state.no_improvement > rules.n_iter_no_change:
        what = "Validation score" if problem.validation_score is not None else "Training loss"
        message = (
            f"{what} did not improve more than tol={rules.tol:f} for "
            f"{rules.n_iter_no_change} consecutive epochs."
        )
        stop, opt, news = optimizer.plateau(state.opt)
        state = state._replace(opt=opt, no_improvement=0 if not stop else state.no_improvement)
        events.append(("plateau", state, f"{message} {news}"))
        if stop:
            return state._replace(stopped="plateau"), events
    if rules.one_epoch:
        return state._replace(stopped="one epoch"), events
    return state, events


def _diverged(state: TrainState, rules: Rules, epoch: int, loss: Any) -> TrainState:
    if rules.divergence == "ignore":
        return state
    if rules.divergence == "stop" or state.diverged is None:
        return state._replace(stopped="diverged")
    fresh = (state.diverged < 0) & ~np.isfinite(loss)
    diverged = np.where(fresh, epoch, state.diverged)
    state = state._replace(diverged=diverged)
    if np.all(diverged >= 0):  # nothing left to train
        state = state._replace(stopped="diverged")
    return state


def _count_no_improvement(
    state: TrainState, problem: Problem, tol: float, loss: float
) -> TrainState:
    """scikit-learn's rule: count epochs that did not improve the best by ``tol``."""
    if problem.validation_score is not None:
        score = problem.validation_score(state.params)
        worse = score < state.best_score + tol
        state = state._replace(
            scores=(*state.scores, score),
            no_improvement=state.no_improvement + 1 if worse else 0,
        )
        if score > state.best_score:
            # Arrays are never written in place: keeping a reference is a snapshot.
            state = state._replace(best_score=score, best_params=state.params)
        return state
    worse = loss > state.best_loss - tol
    return state._replace(
        no_improvement=state.no_improvement + 1 if worse else 0,
        best_loss=min(loss, state.best_loss),
    )
