"""Sphinx configuration: the user guide, the API reference and the examples gallery.

Build with ``nox -s docs`` (output in docs/_build/html).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import xpnet

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))  # _gallery.py, named below by its qualified name
os.environ.setdefault("MPLBACKEND", "Agg")

project = "xpnet"
author = "the xpnet developers"
copyright = "the xpnet developers"
version = release = xpnet.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]
templates_path = ["_templates"]
nitpicky = True
# Other projects' objects: the build runs offline, without intersphinx inventories.
nitpick_ignore_regex = [
    (r"py:.*", r"(sklearn|numpy|matplotlib|dask|torch|cupy|jax|warnings)(\..*)?"),
    # fitted attributes (``classes_``) listed in a class's Attributes section, which
    # numpydoc renders as a list, not as targets
    ("py:attr", r"[a-z_]+_"),
]

# -- API reference ---------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False  # the class templates list the members
numpydoc_class_members_toctree = False

# -- examples gallery -------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r".*\.py$",  # run every script, not only plot_*.py
    "reset_argv": "_gallery.reset_argv",  # each script's output folder, and small sizes
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
}

# -- HTML -------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"xpnet {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path: list[str] = []


# -- hooks ------------------------------------------------------------------------------------
#: Methods other modules of xpnet call, which users need not: left out of the reference.
_IN_PACKAGE = {
    "Model.outputs", "Model.probabilities", "Model.class_index", "Model.labels_of",
    "Model.target", "Model.record", "ModelGrid.from_archive",
}  # fmt: skip


def _skip_member(app, what, name, obj, skip, options):
    """Leave out scikit-learn's generated metadata-routing setters (``set_fit_request``...)
    and xpnet's in-package methods."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    qualname = getattr(getattr(obj, "fget", obj), "__qualname__", "")
    if qualname in _IN_PACKAGE:
        return True
    return None


def _module_data_comment(app, what, name, obj, options, lines):
    """A public constant's ``#:`` comment, read from whichever private module defines it.

    ``xpnet.BACKENDS`` is documented under its public name, but its comment lives in the
    module that assigns it, which autodoc does not look in.
    """
    if what != "data":
        return
    from sphinx.pycode import ModuleAnalyzer

    attr = name.rpartition(".")[2]
    for module_name, module in sorted(sys.modules.items()):
        if module_name.startswith("xpnet.") and getattr(module, attr, None) is obj:
            docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
            if ("", attr) in docs:
                lines[:] = docs["", attr]  # not the docstring of its type (tuple)
                return


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("autodoc-process-docstring", _module_data_comment)
