"""External tools of the C builds: find them, run them under a timeout, fail clearly.

A missing tool raises `ToolchainError` naming the Debian package that provides it
(``gcc-arm-none-eabi``, ``libnewlib-arm-none-eabi`` and ``qemu-system-arm``; checked with
gcc 12.2, newlib 3.3 and QEMU 7.2 on Debian 12). Build products that do not depend on a model
(the QEMU plugin) are cached under ``$TINYLARGE_CACHE_DIR/codegen`` (the project's cache
directory, see `tinylarge.models.cache.default_cache_dir`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

#: apt packages providing each tool (Debian 12).
APT_PACKAGES: dict[str, str] = {
    "gcc": "gcc",
    "arm-none-eabi-gcc": "gcc-arm-none-eabi libnewlib-arm-none-eabi",
    "arm-none-eabi-size": "binutils-arm-none-eabi",
    "arm-none-eabi-nm": "binutils-arm-none-eabi",
    "qemu-system-arm": "qemu-system-arm",
}
#: Default timeout of one compiler or size/nm call, seconds.
TOOL_TIMEOUT_S = 120.0


class ToolchainError(RuntimeError):
    """A build tool is missing, failed, or ran past its timeout."""


def install_hint(tool: str) -> str:
    """The apt-get command that installs ``tool``."""
    packages = APT_PACKAGES.get(tool, tool)
    return f"apt-get install -y --no-install-recommends {packages}"


def find_tool(tool: str) -> str:
    """Absolute path of ``tool`` on PATH, or `ToolchainError` with the install command."""
    path = shutil.which(tool)
    if path is None:
        raise ToolchainError(f"{tool} not found on PATH; install it with: {install_hint(tool)}")
    return path


def have_tools(*tools: str) -> bool:
    """Whether every tool is on PATH."""
    return all(shutil.which(tool) is not None for tool in tools)


def run_tool(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    timeout_s: float = TOOL_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` (``args[0]`` looked up with `find_tool`) and return its output.

    Raises
    ------
    ToolchainError
        If the tool is missing, exits non-zero (the message holds its stderr, with the newlib
        package named when ``rdimon.specs`` is missing) or runs longer than ``timeout_s``.
    """
    tool = str(args[0])
    command = [find_tool(tool), *(str(a) for a in args[1:])]
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolchainError(f"{tool} ran longer than {timeout_s:g} s: {command}") from exc
    if done.returncode != 0:
        message = f"{tool} failed (exit {done.returncode}): {' '.join(command)}\n{done.stderr}"
        if "rdimon.specs" in done.stderr:
            message += f"\nnewlib is missing; install it with: {install_hint('arm-none-eabi-gcc')}"
        raise ToolchainError(message)
    return done


def cache_dir() -> Path:
    """``<tinylarge cache>/codegen``, created on first use."""
    env = os.environ.get("TINYLARGE_CACHE_DIR")
    if env:
        root = Path(env)
    else:  # same rule as tinylarge.models.cache.default_cache_dir (which imports torch)
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "tinylarge"
    path = root / "codegen"
    path.mkdir(parents=True, exist_ok=True)
    return path


def content_key(*parts: str | bytes) -> str:
    """SHA-256 (hex, 16 chars) of ``parts``: names cached build products by their inputs."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()[:16]
