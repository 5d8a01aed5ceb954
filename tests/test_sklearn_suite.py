"""scikit-learn's own MLP tests, run against xpnet's estimators.

The installed scikit-learn ships ``neural_network/tests/test_mlp.py``; this
copies it, points its import of MLPClassifier and MLPRegressor at xpnet, and
runs it in a subprocess.  Only ``test_gradient`` is left out: it calls a
private scikit-learn method (``_loss_grad_lbfgs``) that xpnet has no reason
to copy.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ON_NUMPY = os.environ.get("XPNET_TEST_BACKEND", "numpy") == "numpy"
IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor"


@pytest.mark.skipif(not ON_NUMPY, reason="scikit-learn's tests run on NumPy input")
def test_sklearns_mlp_tests_pass_against_xpnet(tmp_path):
    import sklearn

    source = Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
    if not source.exists():
        pytest.skip(f"this scikit-learn install has no tests ({source})")
    text = source.read_text()
    assert text.count(IMPORT) == 1, "scikit-learn's import line changed; update this test"
    (tmp_path / "test_mlp_xpnet.py").write_text(
        text.replace(IMPORT, "from xpnet import MLPClassifier, MLPRegressor")
    )
    # scikit-learn's conftest provides this fixture; its default seed is 42.
    (tmp_path / "conftest.py").write_text(
        "import pytest\n\n\n@pytest.fixture\ndef global_random_seed():\n    return 42\n"
    )
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "--rootdir", str(tmp_path), "-k", "not test_gradient", str(tmp_path),
        ],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 55, summary
