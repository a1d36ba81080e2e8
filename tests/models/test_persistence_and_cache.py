from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tinylarge.models import build_model, persistence
from tinylarge.models.cache import ModelCache, cache_key
from tinylarge.models.persistence import ModelManifest, load_model, save_model


def _trained_looking_model() -> tuple[torch.nn.Module, ModelManifest]:
    manifest = ModelManifest("large_resnet", {"width": 4}, (2, 64), 5)
    model = manifest.build(seed=3)
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 2, 64))  # moves batch-norm running statistics away from defaults
    return model.eval(), manifest


def test_save_load_round_trips_every_tensor_exactly(tmp_path: Path) -> None:
    model, manifest = _trained_looking_model()
    save_model(model, tmp_path / "m", manifest, {"note": "x"})
    loaded, document = load_model(tmp_path / "m")
    original = model.state_dict()
    restored = loaded.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert torch.equal(original[key], restored[key]), key
    x = torch.randn(4, 2, 64)
    assert torch.equal(model(x), loaded(x))
    assert document["architecture"]["name"] == "large_resnet"
    assert document["extra"] == {"note": "x"}


def test_corrupt_or_missing_files_fail_clearly(tmp_path: Path) -> None:
    model, manifest = _trained_looking_model()
    save_model(model, tmp_path / "m", manifest)
    weights = tmp_path / "m.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match its manifest's SHA-256"):
        load_model(tmp_path / "m")
    with pytest.raises(ValueError, match="no model manifest"):
        load_model(tmp_path / "absent")
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not a tinylarge model manifest"):
        load_model(tmp_path / "m")


def test_cache_key_is_canonical() -> None:
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})


def test_cache_round_trip_and_disable(tmp_path: Path) -> None:
    model, manifest = _trained_looking_model()
    cache = ModelCache(tmp_path)
    assert cache.get("k1") is None
    cache.put("k1", model, manifest, {"training": {"epochs_run": 1}})
    hit = cache.get("k1")
    assert hit is not None
    for a, b in zip(model.state_dict().values(), hit[0].state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert hit[1]["extra"]["training"] == {"epochs_run": 1}
    assert ModelCache(tmp_path, enabled=False).get("k1") is None
    cache.put("k1", build_model("large_resnet", (2, 64), 5, {"width": 4}, seed=9), manifest)
    refreshed = cache.get("k1")
    assert refreshed is not None and refreshed[1]["extra"] == {}


def test_interrupted_put_leaves_no_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, manifest = _trained_looking_model()
    real_save = persistence.save_model

    def crash_midway(*args: object, **kwargs: object) -> Path:
        real_save(*args, **kwargs)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr("tinylarge.models.cache.save_model", crash_midway)
    cache = ModelCache(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        cache.put("k2", model, manifest)
    assert cache.get("k2") is None
    assert list(cache.models_dir.iterdir()) == []


def test_damaged_entry_counts_as_a_miss(tmp_path: Path) -> None:
    model, manifest = _trained_looking_model()
    cache = ModelCache(tmp_path)
    entry = cache.put("k3", model, manifest)
    (entry / "model.safetensors").write_bytes(b"garbage")
    assert cache.get("k3") is None
    document = json.loads((entry / "model.json").read_text())
    assert np.isfinite(document["parameters"])
