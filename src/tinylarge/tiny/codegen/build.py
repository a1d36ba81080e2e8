"""Build the exported C: a host shared library (`HostModel`, via ctypes) and a Cortex-M4 ELF.

Host: ``gcc -std=c99 -Wall -Wextra -Werror -O2 -fPIC -shared`` over every model exported into
a directory (or the chosen prefixes), the kernels and a batch loop (``tl_host.c``), cached
under ``<out_dir>/build/host`` by a hash of the sources and flags.

Cortex-M4 (QEMU's ``mps2-an386`` board, qemu.org/docs/master/system/arm/mps2.html):
``arm-none-eabi-gcc -std=c99 -Wall -Wextra -Werror -mcpu=cortex-m4 -mthumb -mfloat-abi=hard
-mfpu=fpv4-sp-d16 -O2``, each file to an object, linked with newlib's semihosting
(``--specs=rdimon.specs``) and a vector table at address 0 (``tl_startup_m4.c``).
`arm-none-eabi-size` gives text (code + const data), data and bss of the whole ELF and of the
model library's objects alone. Running it is `tinylarge.tiny.codegen.qemu` (`run_qemu`,
`count_instructions`, re-exported here).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tinylarge.tiny.codegen.c_source import KERNELS_C, KERNELS_H, check_prefix, template
from tinylarge.tiny.codegen.qemu import (
    InstructionCount,
    QemuRun,
    count_instructions,
    run_qemu,
)
from tinylarge.tiny.codegen.toolchain import ToolchainError, content_key, run_tool
from tinylarge.tiny.measured import SectionSizes

HOST_CC = "gcc"
HOST_CFLAGS: tuple[str, ...] = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-O2")
M4_CC = "arm-none-eabi-gcc"
M4_CFLAGS: tuple[str, ...] = (
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-mcpu=cortex-m4",
    "-mthumb",
    "-mfloat-abi=hard",
    "-mfpu=fpv4-sp-d16",
    "-O2",
)
M4_LDFLAGS: tuple[str, ...] = ("--specs=rdimon.specs", "-Wl,--section-start=.vectors=0")
HOST_SHIM = "tl_host.c"
M4_STARTUP = "tl_startup_m4.c"

Int8Array = npt.NDArray[np.int8]


def read_manifest(out_dir: str | Path, prefix: str = "tl_") -> dict[str, Any]:
    """The ``<prefix>model.json`` written by `export_c` (shapes, sizes, arena, MACs)."""
    path = Path(out_dir) / f"{check_prefix(prefix)}model.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: export the model with export_c first")
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def exported_prefixes(out_dir: str | Path) -> list[str]:
    """Prefixes of the models exported into ``out_dir``, sorted."""
    return sorted(str(read_json(p)["prefix"]) for p in Path(out_dir).glob("*model.json"))


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _compile_cached(cc: str, flags: Sequence[str], sources: Sequence[Path], target: Path) -> Path:
    """Compile ``sources`` to ``target`` unless it exists; written atomically (temp + rename)."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=target.suffix)
    os.close(fd)
    try:
        run_tool([cc, *flags, *sources, "-o", tmp])
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _source_key(flags: Sequence[str], files: Sequence[Path]) -> str:
    return content_key(" ".join(flags), *(f.name + "\0" + f.read_text() for f in files))


def build_host_library(
    out_dir: str | Path,
    *,
    prefixes: Sequence[str] | None = None,
    cflags: Sequence[str] = HOST_CFLAGS,
) -> Path:
    """A host shared library of the models exported into ``out_dir`` (all, or ``prefixes``).

    The models are compiled as one translation unit (a file that includes each
    ``<prefix>model.c``; their symbols differ by prefix), which is several times faster than
    one compiler run per model. Returns ``<out_dir>/build/host/libtl-<hash>.so``, built once
    per content of the sources and flags.
    """
    out = Path(out_dir)
    chosen = list(prefixes) if prefixes is not None else exported_prefixes(out)
    if not chosen:
        raise FileNotFoundError(f"no exported model (*model.json) in {out}")
    build = out / "build" / "host"
    build.mkdir(parents=True, exist_ok=True)
    shim = build / HOST_SHIM
    if not shim.exists():
        shim.write_text(template(HOST_SHIM))
    models = [out / f"{check_prefix(p)}model.c" for p in chosen]
    headers = [out / KERNELS_H, *(out / f"{p}model.h" for p in chosen)]
    flags = [*cflags, "-fPIC", "-shared", f"-I{out}"]
    key = _source_key(flags, [out / KERNELS_C, shim, *models, *headers])
    unity = build / f"models-{key}.c"
    if not unity.exists():
        unity.write_text("".join(f'#include "{m.name}"\n' for m in models))
    return _compile_cached(
        HOST_CC, flags, [out / KERNELS_C, shim, unity], build / f"libtl-{key}.so"
    )


def build_host_harness(out_dir: str | Path, *, prefix: str = "tl_") -> Path:
    """The harness ``<prefix>main.c`` with the model, as a host executable."""
    out = Path(out_dir)
    sources = [out / f"{check_prefix(prefix)}main.c", out / f"{prefix}model.c", out / KERNELS_C]
    headers = [out / KERNELS_H, out / f"{prefix}model.h"]
    flags = [*HOST_CFLAGS, f"-I{out}"]
    key = _source_key(flags, [*sources, *headers])
    return _compile_cached(HOST_CC, flags, sources, out / "build" / "host" / f"main-{key}")


_INVOKE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


class HostModel:
    """An exported model compiled for the host and called through ctypes.

    Parameters
    ----------
    out_dir : path
        Where `export_c` wrote the model.
    prefix : str, default "tl_"
        The model's prefix in ``out_dir``.
    library : path, optional
        A library from `build_host_library` that holds the model (default: build one with
        every model in ``out_dir``).
    """

    def __init__(
        self, out_dir: str | Path, *, prefix: str = "tl_", library: str | Path | None = None
    ) -> None:
        manifest = read_manifest(out_dir, prefix)
        self.input_shape = tuple(int(d) for d in manifest["input_shape"])
        self.output_shape = tuple(int(d) for d in manifest["output_shape"])
        self.input_size = int(manifest["input_size"])
        self.output_size = int(manifest["output_size"])
        self.library = Path(library) if library is not None else build_host_library(out_dir)
        self._lib = ctypes.CDLL(str(self.library))
        address = ctypes.cast(getattr(self._lib, f"{prefix}invoke"), ctypes.c_void_p).value
        if address is None:
            raise RuntimeError(f"{prefix}invoke not found in {self.library}")
        self._invoke = _INVOKE(address)
        self._batch = self._lib.tl_host_run_batch
        self._batch.argtypes = [
            _INVOKE,
            ctypes.c_void_p,
            ctypes.c_long,
            ctypes.c_void_p,
            ctypes.c_long,
            ctypes.c_long,
        ]
        self._batch.restype = ctypes.c_int

    def run(self, x: np.ndarray) -> Int8Array:
        """Outputs ``(N, *output_shape)`` int8 of int8 frames ``x`` ``(N, *input_shape)``."""
        if not isinstance(x, np.ndarray) or x.dtype != np.int8:
            raise TypeError(f"x must be a numpy int8 array, got {type(x).__name__}")
        if x.ndim != len(self.input_shape) + 1 or x.shape[1:] != self.input_shape:
            raise ValueError(f"x must have shape (N, {self.input_shape}), got {x.shape}")
        frames = np.ascontiguousarray(x)
        out = np.empty((len(x), *self.output_shape), dtype=np.int8)
        rc = self._batch(
            self._invoke,
            frames.ctypes.data,
            self.input_size,
            out.ctypes.data,
            self.output_size,
            len(x),
        )
        if rc != 0:
            raise RuntimeError(f"invoke returned {rc}")
        return out


def parse_size_output(text: str) -> SectionSizes:
    """Sum the rows of ``size`` (Berkeley format: text data bss dec hex filename)."""
    rows = [line.split() for line in text.strip().splitlines()[1:] if line.strip()]
    if not rows or any(len(r) < 3 or not all(v.isdigit() for v in r[:3]) for r in rows):
        raise ValueError(f"unexpected size output:\n{text}")
    return SectionSizes(*(sum(int(r[i]) for r in rows) for i in range(3)))


def section_sizes(*paths: Path) -> SectionSizes:
    """text/data/bss of ELF files or objects (summed) from ``arm-none-eabi-size``."""
    return parse_size_output(run_tool(["arm-none-eabi-size", *paths]).stdout)


_NM_LINE = re.compile(r"^([0-9a-fA-F]+) ([0-9a-fA-F]+) [tT] (\S+)$")


def function_range(elf: Path, objects: Sequence[Path]) -> tuple[int, int]:
    """``[lo, hi)`` addresses covering the functions defined in ``objects`` within ``elf``."""
    names = set()
    for obj in objects:
        for line in run_tool(["arm-none-eabi-nm", "--defined-only", obj]).stdout.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in "tT":
                names.add(parts[2])
    spans = []
    for line in run_tool(["arm-none-eabi-nm", "-S", "--defined-only", elf]).stdout.splitlines():
        match = _NM_LINE.match(line.strip())
        if match and match.group(3) in names:
            start = int(match.group(1), 16) & ~1  # Thumb bit
            spans.append((start, start + int(match.group(2), 16)))
    if not spans:
        raise ToolchainError(f"no function of {[o.name for o in objects]} found in {elf}")
    return min(s for s, _ in spans), max(e for _, e in spans)


@dataclass(frozen=True)
class M4Build:
    """A Cortex-M4 ELF of an exported model and its sizes.

    ``library_sizes`` covers the model library alone (``<prefix>model.o`` + ``tl_kernels.o``:
    weights, kernels, arena); ``elf_sizes`` the whole program (with the harness, start-up and
    newlib's stdio). ``library_range`` is the address range of the library's functions.
    """

    elf: Path
    prefix: str
    library_objects: tuple[Path, ...]
    elf_sizes: SectionSizes
    library_sizes: SectionSizes
    library_range: tuple[int, int]
    input_size: int
    output_size: int
    arena_bytes: int
    macs: int


def build_m4(
    out_dir: str | Path, *, prefix: str = "tl_", build_dir: str | Path | None = None
) -> M4Build:
    """Cross-compile the exported model and its harness into ``<build_dir>/<prefix>model.elf``.

    ``build_dir`` defaults to ``<out_dir>/build/m4``. Raises `ToolchainError` (naming the apt
    package) when ``arm-none-eabi-gcc`` or newlib is missing, or on any compiler warning.
    """
    out = Path(out_dir).resolve()
    manifest = read_manifest(out, prefix)
    build = Path(build_dir) if build_dir is not None else out / "build" / "m4"
    build.mkdir(parents=True, exist_ok=True)
    startup = build / M4_STARTUP
    startup.write_text(template(M4_STARTUP))
    # Link order keeps the library's code contiguous: harness first, then model, kernels.
    sources = [startup, out / f"{prefix}main.c", out / f"{prefix}model.c", out / KERNELS_C]
    objects = [build / (src.stem + ".o") for src in sources]
    for src, obj in zip(sources, objects, strict=True):
        run_tool([M4_CC, *M4_CFLAGS, f"-I{out}", "-c", src, "-o", obj])
    elf = build / f"{prefix}model.elf"
    run_tool([M4_CC, *M4_CFLAGS, *M4_LDFLAGS, *objects, "-o", elf])
    library = tuple(objects[2:])
    return M4Build(
        elf=elf,
        prefix=prefix,
        library_objects=library,
        elf_sizes=section_sizes(elf),
        library_sizes=section_sizes(*library),
        library_range=function_range(elf, library),
        input_size=int(manifest["input_size"]),
        output_size=int(manifest["output_size"]),
        arena_bytes=int(manifest["arena_bytes"]),
        macs=int(manifest["macs"]),
    )


__all__ = [
    "HostModel",
    "InstructionCount",
    "M4Build",
    "QemuRun",
    "SectionSizes",
    "build_host_harness",
    "build_host_library",
    "build_m4",
    "count_instructions",
    "exported_prefixes",
    "function_range",
    "parse_size_output",
    "read_manifest",
    "run_qemu",
    "section_sizes",
]
