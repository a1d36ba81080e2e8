"""The int8 model's checks against TFLM and the Cortex-M4 in the main job: what a run records
when a check cannot be made."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tinylarge.models.cache import ModelCache
from tinylarge.sim import SilentReporter, codegen_stage, tiny_stages
from tinylarge.sim.stages import StageContext
from tinylarge.tiny.codegen import ToolchainError


def _state(smoke_result: Any) -> Any:
    state = copy.copy(smoke_result)
    state.skipped, state.footprints = dict(smoke_result.skipped), dict(smoke_result.footprints)
    return state


def test_a_file_tflm_refuses_is_a_skipped_check_not_a_failed_run(
    smoke_result: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object) -> None:
        raise ValueError("TFLM refused the model: RuntimeError: no kernel for op 42")

    monkeypatch.setattr(tiny_stages, "tflm_check", refuse)
    state = _state(smoke_result)
    line = tiny_stages.evaluate_int8_stage(state, StageContext(ModelCache(), SilentReporter()))
    assert state.tflm_check is None and "no kernel for op 42" in line
    metrics = tiny_stages.tiny_int8_metrics(state)
    assert metrics is not None and metrics["tflm_check"] == {}  # the metrics keep their key
    assert "no kernel for op 42" in state.skipped["models.tiny_int8.tflm_check"]


def test_without_the_cortex_m4_toolchain_the_c_check_is_skipped_with_the_command(
    smoke_result: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(*_: object) -> None:
        raise ToolchainError("arm-none-eabi-gcc not found; apt-get install -y gcc-arm-none-eabi")

    monkeypatch.setattr(codegen_stage, "c_check", missing)
    state = _state(smoke_result)
    state.c_check = None
    line = codegen_stage.tiny_c_stage(state, StageContext(ModelCache(), SilentReporter()))
    assert line.startswith("skipped") and state.c_check is None
    assert "apt-get install" in state.skipped["models.tiny_int8.c_check"]
