"""Save and load a `TinyModel` as one file (``.tlm``): safetensors constants + JSON graph.

The file is a standard safetensors file: the constants (int8 weights, int32 biases, float32
weight scales) are its tensors, and its string metadata holds one key, ``tinylarge.tiny``: the
graph, tensor specs, class names, manifest and ``constants_sha256`` (a hash over every
constant's name, dtype, shape and bytes) as JSON. The same model always gives the same bytes.
Loading checks the format version and the hash, so a corrupt or truncated file fails with
`TinyModelError` instead of loading wrong numbers. Floats round-trip exactly (JSON keeps the
shortest repr of a float64 that holds the float32).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from tinylarge.tiny.graph import FORMAT_VERSION, Op, TensorSpec, TinyModel, TinyModelError

METADATA_KEY = "tinylarge.tiny"


def constants_sha256(constants: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over the constants' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(constants):
        arr = np.ascontiguousarray(constants[name])
        digest.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def to_bytes(model: TinyModel) -> bytes:
    """Serialise a model to the bytes of a ``.tlm`` file."""
    graph = {
        "format_version": FORMAT_VERSION,
        "input": model.input,
        "output": model.output,
        "class_names": list(model.class_names),
        "manifest": dict(model.manifest),
        "tensors": {
            name: {"shape": list(s.shape), "scale": s.scale, "zero_point": s.zero_point}
            for name, s in model.tensors.items()
        },
        "ops": [
            {
                "name": op.name,
                "kind": op.kind,
                "inputs": list(op.inputs),
                "output": op.output,
                "attrs": dict(op.attrs),
            }
            for op in model.ops
        ],
    }
    constants = {k: np.ascontiguousarray(model.constants[k]) for k in sorted(model.constants)}
    graph["constants_sha256"] = constants_sha256(constants)
    # One metadata key: safetensors keeps metadata in a hash map, so several keys would come
    # out in varying order and the same model would not always give the same bytes.
    return st_save(constants, metadata={METADATA_KEY: json.dumps(graph, sort_keys=True)})


def _tuple_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items()}


def from_bytes(data: bytes, *, source: str = "<bytes>") -> TinyModel:
    """Parse ``.tlm`` bytes; `TinyModelError` names ``source`` and what is wrong."""
    try:
        constants = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
        metadata = header.get("__metadata__") or {}
        graph = json.loads(metadata[METADATA_KEY])
        stored_hash = graph["constants_sha256"]
    except Exception as exc:  # safetensors raises several types on damaged input
        raise TinyModelError(
            f"{source} is not a valid TinyModel file (corrupt or truncated): {exc}"
        ) from exc
    version = graph.get("format_version")
    if version != FORMAT_VERSION:
        raise TinyModelError(
            f"{source} has TinyModel format version {version!r}; this tinylarge reads "
            f"version {FORMAT_VERSION}"
        )
    if constants_sha256(constants) != stored_hash:
        raise TinyModelError(f"{source}: constants do not match their SHA-256 (corrupt file)")
    try:
        return TinyModel(
            ops=tuple(
                Op(
                    name=o["name"],
                    kind=o["kind"],
                    inputs=tuple(o["inputs"]),
                    output=o["output"],
                    attrs=_tuple_attrs(o["attrs"]),
                )
                for o in graph["ops"]
            ),
            tensors={
                name: TensorSpec(tuple(t["shape"]), float(t["scale"]), int(t["zero_point"]))
                for name, t in graph["tensors"].items()
            },
            constants=constants,
            input=graph["input"],
            output=graph["output"],
            class_names=tuple(graph["class_names"]),
            manifest=graph["manifest"],
        )
    except (KeyError, TypeError) as exc:
        raise TinyModelError(f"{source}: graph description is incomplete: {exc!r}") from exc


def save_tiny_model(model: TinyModel, path: str | Path) -> Path:
    """Write the model to ``path`` (atomically: a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(to_bytes(model))
    tmp.replace(path)
    return path


def load_tiny_model(path: str | Path) -> TinyModel:
    """Read a model written by `save_tiny_model`."""
    path = Path(path)
    if not path.is_file():
        raise TinyModelError(f"no TinyModel file at {path}")
    return from_bytes(path.read_bytes(), source=str(path))
