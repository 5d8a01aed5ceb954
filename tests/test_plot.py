"""xpnet.plot draws what the models predict, for models and data from every backend."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.datasets import make_blobs  # noqa: E402

import xpnet  # noqa: E402
from xpnet import plot  # noqa: E402


@pytest.fixture(scope="module")
def moons_model(xb, moons):
    X, y = moons
    return xpnet.fit(xb.asarray(X), xb.asarray(y), hidden=3, epochs=300)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(150, centers=[(-2, 0), (2, 0), (0, 3)], cluster_std=0.8, random_state=1)
    return X, y


@pytest.fixture(scope="module")
def blobs_model(xb, blobs):
    X, y = blobs
    return xpnet.fit(xb.asarray(X), xb.asarray(y), hidden=4, epochs=300)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _pixels(fig: Figure) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)


def _class_rgb(n_classes: int, k: int) -> np.ndarray:
    """Class k's colour: the Spectral map sampled once per class."""
    cmap = matplotlib.colormaps["Spectral"].resampled(n_classes)
    return np.round(np.asarray(cmap(k)[:3]) * 255).astype(int)


def test_dir_lists_only_the_public_plot_functions():
    assert dir(plot) == ["data", "decision_boundary", "loss_curve", "sweep"] == sorted(plot.__all__)
    assert all(callable(getattr(plot, name)) for name in dir(plot))
    assert callable(plot._draw_boundary)  # the helpers are still there, only not listed


def test_import_xpnet_does_not_import_matplotlib():
    code = "import sys, xpnet; xpnet.plot; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("which", ["moons", "blobs"])
def test_boundary_colour_under_each_grid_point_is_its_predicted_class(
    which, xb, moons, moons_model, blobs, blobs_model
):
    (X, y), model = (moons, moons_model) if which == "moons" else (blobs, blobs_model)
    n_classes = len(model.classes_)
    res, margin = 40, 0.5
    fig = plt.figure(figsize=(5, 5), dpi=100)
    ax = plot.decision_boundary(
        model, xb.asarray(X), xb.asarray(y), fig.subplots(), resolution=res, margin=margin
    )
    assert ax.figure is fig
    rgb = _pixels(fig)
    height = rgb.shape[0]

    lo, hi = X.min(axis=0) - margin, X.max(axis=0) + margin
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], res), np.linspace(lo[1], hi[1], res))
    nodes = np.column_stack([gx[1:-1, 1:-1].ravel(), gy[1:-1, 1:-1].ravel()])  # inside the axes
    predicted = xb.to_numpy(model.predict(xb.asarray(nodes)))
    index = np.searchsorted(model.classes_, predicted)

    at = ax.transData.transform(nodes)  # display pixels, origin at the bottom left
    cols, rows = np.round(at[:, 0]).astype(int), np.round(height - at[:, 1]).astype(int)
    # Skip nodes under a sample's marker: the marker, not the region, is drawn there.
    data_px = ax.transData.transform(X)
    far = np.min(np.linalg.norm(at[:, None, :] - data_px[None, :, :], axis=-1), axis=1) > 8
    assert far.sum() > 300
    colours = np.array([_class_rgb(n_classes, k) for k in range(n_classes)])
    under = rgb[rows[far], cols[far]]
    assert np.abs(under - colours[index[far]]).max() <= 2
    assert set(index[far]) == set(range(n_classes))  # every class region is visible


def test_boundary_chunks_do_not_change_the_picture(xb, moons, moons_model):
    X, y = moons
    one = plot.decision_boundary(moons_model, X, y, resolution=53).images[0].get_array()
    many = (
        plot.decision_boundary(
            moons_model, xb.asarray(X), xb.asarray(y), resolution=53, chunk_size=100
        )
        .images[0]
        .get_array()
    )
    np.testing.assert_array_equal(one, many)
    assert one.shape == (53, 53)


def test_boundary_samples_take_their_true_class_colour(xb, blobs, blobs_model):
    X, y = blobs
    ax = plot.decision_boundary(blobs_model, xb.asarray(X), xb.asarray(y), resolution=20)
    ax.figure.canvas.draw()  # colours from c= are resolved at draw time
    points = ax.collections[0]
    np.testing.assert_allclose(points.get_offsets(), X)
    expected = np.array([_class_rgb(3, k) for k in np.searchsorted(blobs_model.classes_, y)])
    got = np.round(points.get_facecolors()[:, :3] * 255).astype(int)
    np.testing.assert_array_equal(got, expected)


def test_data_draws_each_class_in_its_colour(xb, blobs):
    X, y = blobs
    fig = plt.figure(figsize=(4, 3), dpi=80)
    ax = plot.data(xb.asarray(X), xb.asarray(y), fig.subplots())
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0", "1", "2"]
    for k, points in enumerate(ax.collections):
        np.testing.assert_allclose(points.get_offsets(), X[y == k])
        got = np.round(points.get_facecolors()[0, :3] * 255).astype(int)
        np.testing.assert_array_equal(got, _class_rgb(3, k))
    rgb = _pixels(fig)
    for k in range(3):  # not blank: each class colour is on the canvas
        assert (np.abs(rgb - _class_rgb(3, k)).max(axis=-1) <= 2).any()


def test_loss_curve_draws_the_recorded_losses(moons_model):
    ax = plot.loss_curve(moons_model)
    line = ax.get_lines()[0]
    passes, losses = zip(*moons_model.loss_curve, strict=True)
    np.testing.assert_array_equal(line.get_xdata(), passes)
    np.testing.assert_allclose(line.get_ydata(), losses)
    assert ax.get_xlabel() == "pass"
    rgb = _pixels(ax.figure)
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 10


def test_sweep_has_one_titled_panel_per_model(xb, moons):
    X, y = moons
    Xb, yb = xb.asarray(X), xb.asarray(y)
    models = [xpnet.fit(Xb, yb, hidden=h, epochs=50) for h in (1, 2, 5)]
    fig = plot.sweep(models, Xb, yb, resolution=20)
    assert isinstance(fig, Figure)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == [f"Hidden layer size {h}" for h in (1, 2, 5)]
    for ax, model in zip(shown, models, strict=True):  # each panel is that model's boundary
        alone = plot.decision_boundary(model, X, y, resolution=20).images[0].get_array()
        np.testing.assert_array_equal(ax.images[0].get_array(), alone)


def _titles(fig: Figure) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.get_visible()]


def test_sweep_trains_hidden_sizes_with_fit_many(xb, moons):
    X, y = moons
    Xb, yb = xb.asarray(X), xb.asarray(y)
    sizes = [1, (2, 2), 3]
    fig = plot.sweep(sizes, Xb, yb, ncols=2, fit={"epochs": 20, "seed": 3}, resolution=20)
    assert _titles(fig) == [
        "Hidden layer size 1",
        "Hidden layer sizes (2, 2)",
        "Hidden layer size 3",
    ]
    # a 2 x 2 layout whose empty fourth cell has no axes (no empty frame)
    assert len(fig.axes) == 3 and all(ax.get_visible() for ax in fig.axes)
    assert fig.axes[0].get_subplotspec().get_gridspec().get_geometry() == (2, 2)
    grid = xpnet.fit_many(Xb, yb, hidden=sizes, epochs=20, seed=3)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    for ax, model in zip(shown, grid, strict=True):  # each panel is that model's boundary
        alone = plot.decision_boundary(model, X, y, resolution=20).images[0].get_array()
        np.testing.assert_array_equal(ax.images[0].get_array(), alone)


# The identity network's loss overflows within 50 passes at this step size (checked below).
DIVERGE = {"lr": 50.0, "activation": "identity", "epochs": 50, "log_every": 10}


def test_sweep_marks_a_diverged_model_and_draws_no_regions_for_it(xb, moons):
    X, y = moons
    Xb, yb = xb.asarray(X), xb.asarray(y)
    fig = plot.sweep([1, 2], Xb, yb, fit=DIVERGE, resolution=20)
    assert _titles(fig) == ["Hidden layer size 1 (diverged)", "Hidden layer size 2 (diverged)"]
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="diverged"):
        xpnet.fit(X, y, hidden=1, **DIVERGE)  # the same model trained alone diverges too

    # A grid with one model that diverged and one that did not: only the second is marked.
    grid = xpnet.fit_many(Xb, yb, hidden=[2, 3], zip=True, **{**DIVERGE, "lr": [0.01, 50.0]})
    assert [row["status"] == "ok" for row in grid.results] == [True, False]
    fig = plot.sweep(grid, Xb, yb, resolution=20)
    # titles name the settings that differ between panels
    assert _titles(fig) == [
        "Hidden layer size 2, lr 0.01",
        "Hidden layer size 3, lr 50.0 (diverged)",
    ]
    ok, diverged = fig.axes
    assert len(ok.images) == 1 and len(diverged.images) == 0  # NaN weights have no boundary
    np.testing.assert_allclose(diverged.collections[0].get_offsets(), X)  # the samples are there
    assert diverged.get_xlim() == ok.get_xlim() and diverged.get_ylim() == ok.get_ylim()
    # Models taken out of their grid lose their status: drawn as they predict, unmarked.
    fig = plot.sweep(list(grid), Xb, yb, resolution=20)
    assert _titles(fig) == ["Hidden layer size 2, lr 0.01", "Hidden layer size 3, lr 50.0"]


@pytest.mark.parametrize(
    ("models", "match"),
    [
        ("abc", "got str"),
        (3, "put a single one in a list"),
        ([], "non-empty"),
        ([1, "2"], "item 1 is '2'"),
        ([[3, 2]], r"item 0 is \[3, 2\] \(list\)"),
        ([1.5], r"item 0 is 1\.5"),
        ([True], "item 0 is True"),
        ([0], "hidden must be > 0"),
    ],
)
def test_sweep_refuses_what_is_neither_models_nor_hidden_sizes(moons, models, match):
    X, y = moons
    with pytest.raises(ValueError, match=match):
        plot.sweep(models, X, y, fit={"epochs": 5})
    assert plt.get_fignums() == []


def test_sweep_refuses_fit_options_it_cannot_use_before_training(moons, moons_model, monkeypatch):
    X, y = moons

    def no_training(*args, **kwargs):
        raise AssertionError("sweep trained before refusing its arguments")

    monkeypatch.setattr(xpnet._fit_many, "train_grid", no_training)
    cases = [
        ([moons_model], {"fit": {"epochs": 5}}, ValueError, "already trained"),
        ([moons_model, 3], {}, ValueError, "mixes trained"),
        ([1, 2], {"fit": {"hidden": 3}}, ValueError, "must not set hidden"),
        ([1, 2], {"fit": {"epoch": 5}}, TypeError, "epoch"),
        ([1, 2], {"fit": [("epochs", 5)]}, ValueError, "fit must be a dict"),
        ([1, 2], {"ncols": 0}, ValueError, "ncols"),
        ([1, 2], {"resolution": 1}, ValueError, "resolution"),
        ([1, 2], {"cmap": "no-such-map"}, ValueError, "colour map"),
        ([1, 2], {"resoluton": 20}, TypeError, "resoluton"),
        ([moons_model], {"resolution": 1}, ValueError, "resolution"),
    ]
    for models, kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            plot.sweep(models, X, y, **kwargs)
    with pytest.raises(ValueError, match="2 features"):
        plot.sweep([1, 2], np.column_stack([X, X[:, 0]]), y)
    with pytest.raises(ValueError, match="not trained on"):
        plot.sweep([moons_model, moons_model], X, y + 5)
    assert plt.get_fignums() == []


def test_no_plot_function_calls_show(monkeypatch, moons, moons_model):
    def forbidden(*args, **kwargs):
        raise AssertionError("plt.show() was called")

    monkeypatch.setattr(plt, "show", forbidden)
    X, y = moons
    plot.data(X, y)
    plot.decision_boundary(moons_model, X, y, resolution=10)
    plot.loss_curve(moons_model)
    plot.sweep([moons_model], X, y, resolution=10)


def test_bad_input_is_refused_before_drawing(moons, moons_model, blobs):
    X, y = moons
    X3 = np.column_stack([X, X[:, 0]])
    model3 = xpnet.fit(X3, y, epochs=2)
    with pytest.raises(ValueError, match="2 features"):
        plot.decision_boundary(model3, X3, y)
    with pytest.raises(ValueError, match="not trained on"):
        plot.decision_boundary(moons_model, blobs[0], blobs[1])
    with pytest.raises(ValueError, match="resolution"):
        plot.decision_boundary(moons_model, X, y, resolution=1)
    with pytest.raises(ValueError, match="xpnet.Model"):
        plot.loss_curve("not a model")
    with pytest.raises(ValueError, match="non-empty"):
        plot.sweep([], X, y)
    with pytest.raises(ValueError, match="colour map"):
        plot.data(X, y, cmap="no-such-map")
    assert plt.get_fignums() == []  # nothing was drawn


def test_a_2000_by_2000_grid_is_evaluated_in_bounded_memory(xb, moons, moons_model):
    import tracemalloc

    X, y = moons
    tracemalloc.start()
    try:
        ax = plot.decision_boundary(moons_model, X, y, resolution=2000, chunk_size=65536)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    image = ax.images[0].get_array()
    assert image.shape == (2000, 2000)
    assert set(np.unique(image)) == {0, 1}
    if xb.name in ("numpy", "array_api_strict"):  # their buffers are traced by tracemalloc
        # The class indices (4 bytes a node) and matplotlib's copy of them; the grid's
        # coordinates and activations (tens of bytes a node) never exist all at once.
        assert peak < 48 * 2**20
