"""The packages' lazy public names: found on first use, a wrong name refused, torch not loaded."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tinylarge.lazy_exports import lazy_getattr


def test_a_public_name_is_imported_from_its_submodule() -> None:
    getattr_ = lazy_getattr("tinylarge.tiny", {"mcu_profile": "mcu"})
    from tinylarge.tiny.mcu import mcu_profile

    assert getattr_("mcu_profile") is mcu_profile


def test_an_unknown_name_is_an_attribute_error_naming_package_and_name() -> None:
    getattr_ = lazy_getattr("tinylarge.deploy", {"run": "runner"})
    with pytest.raises(AttributeError, match=r"module 'tinylarge\.deploy' has no attribute 'nope'"):
        getattr_("nope")


def test_light_submodules_do_not_load_torch() -> None:
    code = (
        "import sys, tinylarge.tiny, tinylarge.deploy, tinylarge.tiny.mcu, tinylarge.deploy.broker;"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
