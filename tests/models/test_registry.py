from __future__ import annotations

import pytest
import torch

from tinylarge.models import BlockModel, build_model, count_parameters, model_entry, model_names


def test_zoo_has_the_named_models() -> None:
    assert {"tiny_cnn", "large_resnet"} <= set(model_names())
    assert model_entry("tiny_cnn").options["width"] == 8


def test_tiny_cnn_fits_the_10k_parameter_budget_on_radio() -> None:
    model = build_model("tiny_cnn", (2, 128), 8, seed=0)
    assert count_parameters(model) <= 10_000


def test_large_resnet_has_at_least_300k_parameters_on_radio() -> None:
    model = build_model("large_resnet", (2, 128), 8, seed=0)
    assert count_parameters(model) >= 300_000


@pytest.mark.parametrize("name", ["tiny_cnn", "large_resnet"])
@pytest.mark.parametrize("shape", [(2, 128), (1, 8, 8), (3, 17)])
def test_models_map_batches_to_logits_in_1d_and_2d(name: str, shape: tuple[int, ...]) -> None:
    model = build_model(name, shape, 5, {"width": 4}, seed=0).eval()
    out = model(torch.randn(3, *shape))
    assert out.shape == (3, 5)


@pytest.mark.parametrize("name", ["tiny_cnn", "large_resnet"])
def test_split_at_every_block_equals_the_whole_model(name: str) -> None:
    model = build_model(name, (2, 64), 4, {"width": 4}, seed=1).eval()
    assert isinstance(model, BlockModel)
    x = torch.randn(5, 2, 64)
    whole = model(x)
    for k in range(len(model.blocks) + 1):
        torch.testing.assert_close(model.forward_from(model.forward_until(x, k), k), whole)


def test_build_is_deterministic_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_model("tiny_cnn", (2, 128), 8, seed=5)
    after = torch.rand(1)
    b = build_model("tiny_cnn", (2, 128), 8, seed=5)
    c = build_model("tiny_cnn", (2, 128), 8, seed=6)
    assert torch.equal(before, after)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.state_dict()["blocks.0.0.weight"], c.state_dict()["blocks.0.0.weight"])


def test_unknown_model_and_option_errors_list_what_is_allowed() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'resnet9000'; registered models: .*tiny"):
        build_model("resnet9000", (2, 128), 8, seed=0)
    with pytest.raises(ValueError, match=r"no option widht; options: width \(default 8\)"):
        build_model("tiny_cnn", (2, 128), 8, {"widht": 3}, seed=0)
    with pytest.raises(ValueError, match=r"invalid option: width = 'wide'"):
        build_model("tiny_cnn", (2, 128), 8, {"width": "wide"}, seed=0)
    with pytest.raises(ValueError, match="width >= 1"):
        build_model("tiny_cnn", (2, 128), 8, {"width": 0}, seed=0)
    with pytest.raises(ValueError, match=r"input_shape must be \(channels, length\)"):
        build_model("tiny_cnn", (128,), 8, seed=0)
