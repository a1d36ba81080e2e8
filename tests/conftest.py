"""Shared fixtures: an isolated model cache for the whole session, and one smoke run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Never read or write the user's real cache from tests."""
    path = tmp_path_factory.mktemp("tinylarge-cache")
    old = os.environ.get("TINYLARGE_CACHE_DIR")
    os.environ["TINYLARGE_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("TINYLARGE_CACHE_DIR", None)
    else:
        os.environ["TINYLARGE_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def smoke_result():  # type: ignore[no-untyped-def]
    """One run of the smoke preset, shared by the sim and report tests."""
    from tinylarge.config import load_preset
    from tinylarge.sim import run

    return run(load_preset("smoke"))


#: The hybrid-lm preset at test sizes (same models, little text, few devices and tokens).
HYBRID_LM_TEST_OVERRIDES: dict[str, object] = {
    "eval_tokens": 1500, "prompts": 3, "tokens_per_prompt": 12, "devices": 6,
    "tokens_per_device": 16
}  # fmt: skip


@pytest.fixture(scope="session")
def hybrid_lm_result():  # type: ignore[no-untyped-def]
    """One run of the hybrid-lm preset at test sizes, shared by the sim and report tests."""
    from tinylarge.config import load_preset, scenario_from_table
    from tinylarge.config.loading import scenario_to_table
    from tinylarge.sim import run

    table = scenario_to_table(load_preset("hybrid-lm"))
    table["hybrid_lm"].update(HYBRID_LM_TEST_OVERRIDES)  # type: ignore[union-attr]
    table["network"]["compare_profiles"] = ["redcap", "nb_iot"]  # type: ignore[index]
    return run(scenario_from_table(table, "hybrid-lm-test"))


@pytest.fixture(scope="session")
def mosquitto() -> str:
    """Path of the Mosquitto broker program. Without it, tests that start a real broker are
    skipped with the install hint, unless TINYLARGE_REQUIRE_MOSQUITTO=1 (CI: they must run)."""
    import shutil

    from tinylarge.deploy.broker import INSTALL_HINT

    program = shutil.which("mosquitto")
    if program is None:
        if os.environ.get("TINYLARGE_REQUIRE_MOSQUITTO") == "1":
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    return program


@pytest.fixture(scope="session")
def m4_toolchain() -> None:
    """The Cortex-M4 cross compiler, QEMU and a host gcc (for QEMU's plugin). Without them,
    tests that build and emulate are skipped with the install command, unless
    TINYLARGE_REQUIRE_QEMU is set (CI: they must run)."""
    from tinylarge.tiny.codegen.toolchain import have_tools, install_hint

    missing = [
        tool for tool in ("arm-none-eabi-gcc", "qemu-system-arm", "gcc") if not have_tools(tool)
    ]
    if missing:
        message = f"{', '.join(missing)} missing; " + "; ".join(map(install_hint, missing))
        if os.environ.get("TINYLARGE_REQUIRE_QEMU"):
            pytest.fail(message)
        pytest.skip(message)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start a real broker, emulator or Ray cluster are ``system`` tests (CI's
    second pass, on other CPU kernels, leaves them out: they do not depend on the kernels)."""
    for item in items:
        if {"mosquitto", "m4_toolchain", "ray_local"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.system)


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """A local Ray cluster of 2 CPUs for the session (``ray.init(num_cpus=2)``)."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
