"""`import xpnet`, `xpnet --help` and `xpnet info` stay light.

scikit-learn (with SciPy), tqdm and matplotlib load only when first used: the
estimators, a progress bar, a plot.  Each check runs in a fresh interpreter, so
that what the test session has already imported does not count.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np

#: Top-level packages that ``import xpnet`` and the light commands must not load.
HEAVY = ("sklearn", "scipy", "tqdm", "matplotlib")
#: The array libraries other than NumPy: probed by ``xpnet info`` only.
BACKEND_LIBRARIES = ("cupy", "torch", "jax", "array_api_strict")

# Prints, as JSON, which of the packages in WATCH the code before it left imported.
_REPORT = """
import json, sys
WATCH = {watch!r}
print(json.dumps(sorted({{name.partition(".")[0] for name in sys.modules}} & set(WATCH))))
"""


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout


def _loaded_after(code: str, watch: tuple[str, ...] = HEAVY) -> set[str]:
    """Which packages of ``watch`` a fresh interpreter holds after running ``code``."""
    out = _python(code + _REPORT.format(watch=watch))
    return set(json.loads(out.splitlines()[-1]))


def _cli(*argv: str) -> str:
    """Code that runs ``python -m xpnet ARGV`` in this process and survives its exit."""
    return f"""
import runpy, sys
sys.argv = ["xpnet", *{list(argv)!r}]
try:
    runpy.run_module("xpnet", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
"""


def test_import_xpnet_loads_no_heavy_package_and_no_other_backend():
    assert _loaded_after("import xpnet", HEAVY + BACKEND_LIBRARIES) == set()


def test_the_light_public_names_need_no_heavy_package():
    code = (
        "import xpnet\n"
        "xpnet.fit, xpnet.fit_many, xpnet.Model, xpnet.ModelGrid, xpnet.Results\n"
        "xpnet.available_backends, xpnet.BACKENDS, xpnet.BackendInfo\n"
        "xpnet.BackendFallbackWarning, xpnet.BackendUnavailableError\n"
        "import xpnet.cli\n"
    )
    assert _loaded_after(code) == set()


def test_plot_module_loads_without_matplotlib_or_scikit_learn():
    code = "import xpnet\nassert callable(xpnet.plot.decision_boundary)\n"
    assert _loaded_after(code) == set()


def test_estimators_load_on_first_access_and_bring_scikit_learn():
    code = (
        "import xpnet\n"
        "assert 'MLPClassifier' in dir(xpnet) and 'plot' in dir(xpnet)\n"
        "import sklearn.base, xpnet._estimators as est\n"
        "assert xpnet.MLPClassifier is est.MLPClassifier\n"
        "assert xpnet.MLPRegressor is est.MLPRegressor\n"
        "assert issubclass(xpnet.MLPClassifier, sklearn.base.ClassifierMixin)\n"
        "assert issubclass(xpnet.MLPRegressor, sklearn.base.RegressorMixin)\n"
        "from xpnet import MLPClassifier, MLPRegressor\n"
        "assert MLPClassifier is est.MLPClassifier and MLPRegressor is est.MLPRegressor\n"
        "X = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 5\n"
        "y = [0, 1, 1, 0] * 5\n"
        "clf = MLPClassifier((4,), solver='lbfgs', max_iter=20, random_state=0).fit(X, y)\n"
        "assert clf.predict(X).shape == (20,)\n"
    )
    assert _loaded_after(code, ("sklearn",)) == {"sklearn"}


def test_a_star_import_binds_every_public_name():
    code = (
        "import xpnet\n"
        "names = {}\n"
        "exec('from xpnet import *', names)\n"
        "missing = set(xpnet.__all__) - set(names)\n"
        "assert not missing, missing\n"
        "assert names['plot'] is xpnet.plot and names['MLPClassifier'] is xpnet.MLPClassifier\n"
    )
    _python(code)


def test_an_unknown_name_is_an_attribute_error():
    code = (
        "import xpnet\n"
        "try:\n"
        "    xpnet.MLPClassifer\n"
        "except AttributeError as exc:\n"
        "    assert \"'MLPClassifer'\" in str(exc)\n"
        "else:\n"
        "    raise AssertionError('no AttributeError')\n"
        "assert not hasattr(xpnet, 'nothing_of_that_name')\n"
    )
    assert _loaded_after(code) == set()


def test_a_pickled_estimator_loads_in_a_fresh_interpreter():
    import xpnet

    X, y = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 5), [0, 1, 1, 0] * 5
    clf = xpnet.MLPClassifier((4,), solver="lbfgs", max_iter=20, random_state=0).fit(X, y)
    code = (
        "import pickle, sys\n"
        f"clf = pickle.loads(bytes.fromhex({pickle.dumps(clf).hex()!r}))\n"
        "import xpnet\n"
        "assert type(clf) is xpnet.MLPClassifier\n"
        "print(clf.predict([[0.0, 1.0], [1.0, 1.0]]).tolist())\n"
    )
    assert _python(code).strip() == str(clf.predict([[0.0, 1.0], [1.0, 1.0]]).tolist())


def test_help_loads_no_heavy_package_and_no_other_backend():
    assert _loaded_after(_cli("--help"), HEAVY + BACKEND_LIBRARIES) == set()
    for command in ("demo", "sweep", "info"):
        assert _loaded_after(_cli(command, "--help"), HEAVY + BACKEND_LIBRARIES) == set()


def test_info_loads_only_what_probing_the_backends_loads():
    # The backends themselves may bring some of these (torch imports tqdm); xpnet adds none.
    probing = _loaded_after("import xpnet._backends as b\nb.available_backends()\n")
    loaded = _loaded_after(_cli("info"))
    assert "sklearn" not in loaded
    assert loaded <= probing
