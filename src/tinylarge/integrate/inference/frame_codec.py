"""Int8 input frames on their way to the edge: requantized to fewer bits per value, their
zstd-compressed size, and the float input the edge's model gets from them.

Pure, vectorized helpers of the ``large_compressed`` baseline (`LargeCompressed`): the device
sends its int8 frame requantized to b bits per I/Q value and compressed losslessly with zstd
(Zstandard, RFC 8878, through the ``zstandard`` package).

The quantizer is uniform and mid-rise over the int8 range: the 256 int8 values are split into
2^b cells of ``step = 2^(8 - b)`` consecutive values; a value's code is its cell,
``code = (x + 128) // step`` in ``[0, 2^b)``, and the code is reconstructed as the centre of its
cell, ``-128 + code * step + (step - 1) / 2``. No level sits on a cell edge (mid-rise); the
levels are symmetric about -0.5, the centre of the int8 range; b = 8 is lossless.
"""

from __future__ import annotations

import numpy as np
import zstandard
from numpy.typing import ArrayLike, NDArray

#: Smallest and largest bits per value `requantize_frames` accepts.
MIN_BITS, MAX_BITS = 1, 8
#: Largest zstd compression level.
MAX_LEVEL: int = zstandard.MAX_COMPRESSION_LEVEL


def _bits(bits: object) -> int:
    number = int(bits) if isinstance(bits, int | np.integer) else None
    if isinstance(bits, bool) or number is None or not MIN_BITS <= number <= MAX_BITS:
        raise ValueError(f"bits must be an integer in [{MIN_BITS}, {MAX_BITS}]; got {bits!r}")
    return number


def requantize_frames(x: ArrayLike, bits: int) -> NDArray[np.uint8]:
    """Codes of the b-bit mid-rise quantizer (module docstring) of int8-range frames.

    Parameters
    ----------
    x : array_like, any shape
        Values on the int8 scale. Integers must lie in [-128, 127]; floats must be finite and
        are first rounded to the nearest integer (half to even) and clipped to [-128, 127], as
        the device's int8 input quantizer would.
    bits : int
        Bits per value b, in [1, 8].

    Returns
    -------
    ndarray of uint8, shape of ``x``
        Codes in ``[0, 2^bits)``; one byte per value (the codec sees the b-bit codes as bytes).
    """
    b = _bits(bits)
    arr = np.asarray(x)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.size and (arr.min() < -128 or arr.max() > 127):
            raise ValueError(
                f"integer frames must be int8 values in [-128, 127]; got [{arr.min()}, {arr.max()}]"
            )
        values = arr.astype(np.int16)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError("float frames must be finite (no NaN or inf)")
        values = np.clip(np.rint(arr), -128, 127).astype(np.int16)
    else:
        raise TypeError(f"frames must be integers or floats on the int8 scale; got {arr.dtype}")
    return ((values + 128) >> (8 - b)).astype(np.uint8)


def dequantize_frames(codes: ArrayLike, bits: int) -> NDArray[np.float32]:
    """Reconstruction of b-bit codes on the int8 scale: the centre of each code's cell.

    Parameters
    ----------
    codes : array_like of int, any shape
        Codes from `requantize_frames`, in ``[0, 2^bits)``.
    bits : int
        Bits per value b, in [1, 8].

    Returns
    -------
    ndarray of float32, shape of ``codes``
        ``-128 + code * 2^(8-b) + (2^(8-b) - 1) / 2``; for b = 8 the original int8 values.
        Map to the model's input with `dequantize_input`.
    """
    b = _bits(bits)
    arr = np.asarray(codes)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"codes must be integers; got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= 1 << b):
        raise ValueError(f"codes must be in [0, {1 << b}) for bits={b}")
    step = 1 << (8 - b)
    return (-128.0 + arr.astype(np.float32) * step + (step - 1) / 2).astype(np.float32)


def dequantize_input(values: ArrayLike, *, scale: float, zero_point: int) -> NDArray[np.float32]:
    """The float input the edge's model gets from frames on the int8 scale:
    ``scale x (value - zero_point)`` in float32 (as ONNX ``DequantizeLinear``), the inverse of
    the device's input quantizer (`tinylarge.tiny.graph.TinyModel.quantize_input`).

    Parameters
    ----------
    values : array_like, any shape
        int8 frames as sent, or their reconstruction on the int8 scale (`dequantize_frames`).
    scale : float
        The tiny model's input scale (> 0).
    zero_point : int
        The tiny model's input zero point.

    Returns
    -------
    ndarray of float32, shape of ``values``
    """
    x = np.asarray(values).astype(np.float32)
    return np.asarray((x - np.float32(zero_point)) * np.float32(scale), dtype=np.float32)


def compressed_sizes(frames: ArrayLike, level: int = 3) -> NDArray[np.int64]:
    """Size of each frame compressed on its own with zstd, bytes.

    Each frame ``frames[i]`` is compressed as one zstd frame of its C-order bytes, without the
    content-size field, checksum or dictionary id (the receiver knows the frame shape, so
    they are redundant). zstd falls back to a raw block when compression does not help, so a
    frame never grows by more than the few header bytes.

    Parameters
    ----------
    frames : array_like of uint8 or int8, shape (n, ...)
        One frame per row, e.g. `requantize_frames` codes or raw int8 frames.
    level : int
        zstd compression level, in [1, 22] (3 is zstd's default).

    Returns
    -------
    ndarray of int64, shape (n,)
        Compressed bytes per frame.
    """
    arr = np.asarray(frames)
    if arr.dtype not in (np.uint8, np.int8) or arr.ndim < 1:
        raise TypeError(
            f"frames must be uint8 or int8 of shape (n, ...); got {arr.dtype} {arr.shape}"
        )
    number = int(level) if isinstance(level, int | np.integer) else None
    if isinstance(level, bool) or number is None or not 1 <= number <= MAX_LEVEL:
        raise ValueError(f"level must be an integer in [1, {MAX_LEVEL}]; got {level!r}")
    compressor = zstandard.ZstdCompressor(
        level=number, write_checksum=False, write_content_size=False, write_dict_id=False
    )
    rows = np.ascontiguousarray(arr).reshape(arr.shape[0], -1)
    return np.fromiter(
        (len(compressor.compress(row.tobytes())) for row in rows), np.int64, rows.shape[0]
    )
