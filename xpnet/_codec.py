"""The tagged value codec of xpnet's files: plain values as JSON, arrays apart.

An :class:`Encoder` turns a nesting of plain values (None, bools, numbers,
strings, lists, dicts with string keys, tuples, NumPy arrays, paths, NumPy
generators, scikit-learn's LabelBinarizer) into JSON, putting each array in
:attr:`Encoder.arrays` under the path of the value; a :class:`Decoder` turns
that JSON and those arrays back into the values, checking each as it is read
and raising :class:`Invalid` at the first that is not what it should be.
Non-JSON values are tagged ``{"$": tag, ...}``.

The codec knows no xpnet class.  What the layers above store beside plain
values comes in through two hooks: *records* (named tuples, tagged with their
class name, rebuilt by a function of their decoded fields that checks them)
and *devices* (an array library's device objects, written as the library's
name and the device's text by the backends' own functions).
"""

from __future__ import annotations

import numbers
import os
import re
from collections.abc import Callable
from typing import Any

import numpy as np


class Invalid(Exception):
    """A value read from a file is not what it should be; the message says where and why.
    Callers raise it again as :class:`~xpnet.ModelFileError` with the file's name."""


#: The floating dtypes a file's parameters may have.
FLOATS = ("float32", "float64")


def is_int(v: Any) -> bool:
    """Whether ``v`` is an int (a Python or NumPy integer), not a bool."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_real(v: Any) -> bool:
    """Whether ``v`` is a Python int or float, not a bool (as JSON numbers come back)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def lacks(name: Any, path: str) -> str:
    return f"it lacks the array {name!r}" + ("" if name == path else f" (of {path})")


# -- labels: any 1-D array numpy.unique sorts --------------------------------------------------
def labels_node(labels: np.ndarray, name: str, arrays: dict) -> dict:
    """Labels as a tagged node, their array in ``arrays`` under ``name``.

    Numbers, bools and unicode are stored as they are; bytes and object arrays of
    strings as unicode, with a note of their dtype; other object arrays of numbers,
    bools and strings as a JSON list, which keeps each one's Python type.
    """
    if labels.ndim != 1:
        raise TypeError(f"{name} must be 1-D to be stored, got shape {labels.shape}")
    kind = labels.dtype.kind
    if kind in "biufcU":
        arrays[name] = labels
        return {"$": "labels", "array": name}
    if kind == "S":
        arrays[name] = np.char.decode(labels, "latin-1")
        return {"$": "labels", "array": name, "as": labels.dtype.str}
    if kind == "O":
        items = labels.tolist()
        if all(isinstance(v, str) for v in items):
            arrays[name] = np.array(items, dtype=str) if items else np.zeros(0, "U1")
            return {"$": "labels", "array": name, "as": "object"}
        values = []
        for v in items:
            v = v.item() if isinstance(v, np.generic) else v
            if not isinstance(v, (bool, int, float, str)):
                raise TypeError(
                    f"{name} holds a label of type {type(v).__name__} ({v!r}), which an xpnet "
                    "file cannot hold; use ints, floats, bools or strings as labels"
                )
            values.append(v)
        return {"$": "labels", "values": values}
    raise TypeError(
        f"{name} has dtype {labels.dtype}, which an xpnet file cannot hold; use ints, floats, "
        "bools or strings as labels"
    )


def labels_from_node(node: dict, arrays: dict, path: str) -> np.ndarray:
    """The labels of :func:`labels_node`'s node, checked."""
    if "values" in node:
        values = node["values"]
        if not isinstance(values, list) or not all(
            isinstance(v, (bool, int, float, str)) for v in values
        ):
            raise Invalid(f"{path} is not a list of numbers, bools and strings")
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    name = node.get("array")
    a = arrays.get(name) if isinstance(name, str) else None
    if a is None:
        raise Invalid(lacks(name, path))
    if a.ndim != 1 or a.dtype.kind not in "biufcU":
        raise Invalid(
            f"{path} ({name}) is not a 1-D array of numbers or strings: "
            f"shape {a.shape}, dtype {a.dtype}"
        )
    stored_as = node.get("as")
    if stored_as is None:
        return a
    if stored_as == "object" and a.dtype.kind == "U":
        return a.astype(object)
    if isinstance(stored_as, str) and re.fullmatch(r"\|S\d+", stored_as) and a.dtype.kind == "U":
        try:
            return np.char.encode(a, "latin-1").astype(stored_as)
        except UnicodeEncodeError:
            raise Invalid(f"{path} ({name}) is not a list of byte strings") from None
    raise Invalid(f"{path} is stored as {stored_as!r}, which this xpnet does not know")


# -- the codec -------------------------------------------------------------------------------
#: ``device(value)``: ``(library, text)`` for a device object of an array library, else None.
DeviceText = Callable[[Any], "tuple[str, str] | None"]
#: ``device(library, text)``: the device object, or the text where it cannot be built here.
DeviceObject = Callable[[str, str], Any]


class Encoder:
    """JSON for a nesting of plain values; arrays go to :attr:`arrays`, named by their path.

    ``records`` are the named-tuple classes stored as ``{"$": class name, field: value}``;
    ``device`` writes a device object (see :data:`DeviceText`).
    """

    def __init__(self, *, records: tuple[type, ...] = (), device: DeviceText | None = None):
        self.arrays: dict[str, np.ndarray] = {}
        self.records = records
        self.device = device

    def __call__(self, value: Any, path: str) -> Any:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            return str(value)
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, numbers.Real):
            return float(value)
        if isinstance(value, np.ndarray):
            if value.dtype.kind in "biufc":
                self.arrays[path] = value
                return {"$": "array", "name": path}
            return labels_node(value, path, self.arrays)
        if isinstance(value, list):
            return [self(v, f"{path}.{i}") for i, v in enumerate(value)]
        if isinstance(value, self.records):
            fields = {name: self(getattr(value, name), f"{path}.{name}") for name in value._fields}
            return {"$": type(value).__name__, **fields}
        if isinstance(value, tuple) and not hasattr(value, "_fields"):
            return {"$": "tuple", "items": [self(v, f"{path}.{i}") for i, v in enumerate(value)]}
        if isinstance(value, dict):
            if not all(isinstance(k, str) and k != "$" for k in value):
                raise TypeError(f"{path} is a dict whose keys are not all strings; cannot store it")
            return {k: self(v, f"{path}.{k}") for k, v in value.items()}
        if isinstance(value, np.random.RandomState):
            name, key, pos, has_gauss, cached = value.get_state(legacy=True)
            self.arrays[f"{path}.key"] = np.asarray(key)
            return {
                "$": "RandomState", "algorithm": name, "key": f"{path}.key", "pos": int(pos),
                "has_gauss": int(has_gauss), "cached_gaussian": float(cached),
            }  # fmt: skip
        if type(value).__name__ == "LabelBinarizer" and type(value).__module__.startswith(
            "sklearn."
        ):
            return {
                "$": "LabelBinarizer",
                "params": self(value.get_params(), f"{path}.params"),
                "classes": labels_node(value.classes_, f"{path}.classes_", self.arrays),
                "y_type": str(value.y_type_),
                "sparse_input": bool(value.sparse_input_),
            }
        if isinstance(value, os.PathLike):  # a pathlib path (pathlib itself loads lazily)
            return {"$": "path", "text": os.fspath(value)}
        found = self.device(value) if self.device is not None else None
        if found is not None:
            return {"$": "device", "library": found[0], "text": found[1]}
        raise TypeError(
            f"{path} = {value!r} (of type {type(value).__module__}.{type(value).__qualname__}) "
            "cannot be stored in an xpnet file, which holds only numbers, strings, arrays and "
            "lists of them; pickle the object instead, or replace that value"
        )


class Decoder:
    """The values of :class:`Encoder`'s JSON, checked as they are read.

    ``records`` maps a record's tag to a function of its decoded fields (a dict) that
    checks them and builds the record (raising :class:`Invalid`); ``device`` builds a
    device object (see :data:`DeviceObject`; without it a device comes back as text).
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        *,
        records: dict[str, Callable[[dict, str], Any]] | None = None,
        device: DeviceObject | None = None,
    ) -> None:
        self.arrays = arrays
        self.records = records or {}
        self.device = device

    def __call__(self, node: Any, path: str) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self(v, f"{path}.{i}") for i, v in enumerate(node)]
        if not isinstance(node, dict):
            raise Invalid(f"{path} is not a value an xpnet file holds")
        tag = node.get("$")
        if tag is None:
            return {k: self(v, f"{path}.{k}") for k, v in node.items()}
        if tag == "array":
            name = node.get("name")
            if not isinstance(name, str) or name not in self.arrays:
                raise Invalid(lacks(name, path))
            return self.arrays[name]
        if tag == "tuple":
            items = node.get("items")
            if not isinstance(items, list):
                raise Invalid(f"{path} is a tuple without items")
            return tuple(self(v, f"{path}.{i}") for i, v in enumerate(items))
        if tag == "labels":
            return labels_from_node(node, self.arrays, path)
        if tag in self.records:
            fields = {k: self(v, f"{path}.{k}") for k, v in node.items() if k != "$"}
            return self.records[tag](fields, path)
        if tag == "RandomState":
            return self._random_state(node, path)
        if tag == "LabelBinarizer":
            return self._label_binarizer(node, path)
        if tag == "path":
            if not isinstance(node.get("text"), str):
                raise Invalid(f"{path} is not a path")
            from pathlib import Path

            return Path(node["text"])
        if tag == "device":
            library, text = node.get("library"), node.get("text")
            if not isinstance(library, str) or not isinstance(text, str):
                raise Invalid(f"{path} is not a device")
            return text if self.device is None else self.device(library, text)
        raise Invalid(f"{path} has the tag {tag!r}, which this xpnet does not know")

    def _random_state(self, node: dict, path: str) -> np.random.RandomState:
        key = self.arrays.get(node.get("key")) if isinstance(node.get("key"), str) else None
        if key is None or key.shape != (624,) or key.dtype != np.uint32:
            raise Invalid(f"{path} has no generator key (624 uint32)")
        rng = np.random.RandomState()
        try:
            rng.set_state(
                (node.get("algorithm"), key, node.get("pos"), node.get("has_gauss"),
                 node.get("cached_gaussian"))
            )  # fmt: skip
        except (TypeError, ValueError) as exc:
            raise Invalid(f"{path} is not a generator state ({exc})") from None
        return rng

    def _label_binarizer(self, node: dict, path: str) -> Any:
        from sklearn.preprocessing import LabelBinarizer

        params = self(node.get("params"), f"{path}.params")
        allowed = {"neg_label", "pos_label", "sparse_output"}
        if not isinstance(params, dict) or set(params) - allowed:
            raise Invalid(f"{path}.params are not a LabelBinarizer's")
        y_type = node.get("y_type")
        if y_type not in ("binary", "multiclass", "multilabel-indicator"):
            raise Invalid(f"{path} has the target type {y_type!r}")
        binarizer = LabelBinarizer(**params)
        binarizer.classes_ = labels_from_node(node.get("classes") or {}, self.arrays, path)
        binarizer.y_type_ = y_type
        binarizer.sparse_input_ = bool(node.get("sparse_input"))
        return binarizer
