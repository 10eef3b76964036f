"""The SIGMA network on a tiny DINOv2: shapes, determinism, gradients, ablation switches."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from sigma_iml.errors import ConfigError
from sigma_iml.models.backbone import DinoBackbone
from sigma_iml.models.config import SigmaConfig
from sigma_iml.models.decoder import pyramid_sizes
from sigma_iml.models.sigma import SigmaNet
from sigma_iml.testing import tiny_sigma_config, write_dinov2


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return write_dinov2(tmp_path_factory.mktemp("dinov2"), seed=1)


def build(tiny_dir, *, image_size=70, seed=0, backbone=None, **head):
    config = tiny_sigma_config(str(tiny_dir), image_size=image_size, **head)
    if backbone:
        config = config.replace(backbone=backbone)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SigmaNet.from_config(config, local_files_only=True).eval()


def pair(batch=2, height=70, width=70, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, height, width, generator=g), torch.rand(
        batch, 3, height, width, generator=g
    )


def test_default_config_is_the_papers():
    config = SigmaConfig()
    assert config.backbone.name_or_path == "facebook/dinov2-base"
    assert config.backbone.layers == (2, 5, 11)
    assert config.backbone.image_size == (518, 518)
    assert (config.head.num_drb, config.head.bcmr_steps, config.head.prior_epsilon) == (2, 2, 0.01)
    assert pyramid_sizes((37, 37), 3) == [(37, 37), (19, 19), (10, 10)]


def test_config_json_round_trip_and_unknown_keys():
    config = SigmaConfig().replace(backbone={"layers": (11,)}, head={"num_drb": 4})
    again = SigmaConfig.from_json(config.to_json())
    assert again == config
    data = config.to_dict()
    data["head"]["num_drbs"] = 2
    with pytest.raises(ConfigError, match="num_drbs"):
        SigmaConfig.from_dict(data)
    with pytest.raises(ConfigError, match="divisible"):
        SigmaConfig().replace(head={"embed_dim": 30, "num_heads": 4})


def test_output_shapes_square_and_non_square(tiny_dir):
    net = build(tiny_dir)
    original, edited = pair()
    with torch.inference_mode():
        out = net(original, edited)
    assert out.logits.shape == (2, 1, 70, 70)
    assert out.difference_maps.shape == (2, 3, 5, 5)
    assert out.visual_evidence.shape == out.consensus.shape == (2, 32, 5, 5)
    assert out.instruction_prior.shape == (2, 1, 5, 5)
    assert [r.shape for r in out.refined_levels] == [torch.Size([2, 32, 5, 5])] * 3

    wide = build(tiny_dir, backbone={"image_size": (42, 112)})
    with torch.inference_mode():
        out = wide(*pair(1, 42, 112))
    assert out.logits.shape == (1, 1, 42, 112)
    assert out.difference_maps.shape == (1, 3, 3, 8)


def test_forward_equals_features_then_head(tiny_dir):
    net = build(tiny_dir)
    original, edited = pair()
    with torch.inference_mode():
        full = net(original, edited)
        features_o, features_e = net.features(original, edited)
        separate = net.head(features_o, features_e)
        # One stacked backbone forward gives the same features as two separate ones.
        alone = net.backbone(original)
    torch.testing.assert_close(full.logits, separate.logits)
    for a, b in zip(alone, features_o, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_deterministic(tiny_dir):
    original, edited = pair(seed=4)
    first, second = build(tiny_dir, seed=7), build(tiny_dir, seed=7)
    with torch.inference_mode():
        a = first(original, edited).logits
        b = first(original, edited).logits
        c = second(original, edited).logits
    assert torch.equal(a, b) and torch.equal(a, c)
    different = build(tiny_dir, seed=8)
    with torch.inference_mode():
        assert not torch.equal(a, different(original, edited).logits)


def test_identical_images_have_zero_difference_maps(tiny_dir):
    net = build(tiny_dir)
    original, _ = pair()
    with torch.inference_mode():
        out = net(original, original.clone())
    assert out.difference_maps.abs().max() < 1e-5


def test_no_gradient_reaches_the_backbone_and_the_head_learns(tiny_dir):
    net = build(tiny_dir).train()
    assert not net.backbone.training and net.sigma_head.training
    original, edited = pair()
    out = net(original, edited)
    target = torch.zeros_like(out.logits)
    target[..., 20:50, 20:50] = 1
    torch.nn.functional.binary_cross_entropy_with_logits(out.logits, target).backward()
    assert all(p.grad is None for p in net.backbone.parameters())
    head_grads = [p.grad for p in net.sigma_head.parameters()]
    assert all(g is not None for g in head_grads)
    assert sum(float(g.abs().sum()) for g in head_grads) > 0
    # Every trainable parameter belongs to the head.
    trainable = {id(p) for p in net.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in net.sigma_head.parameters()}


def test_prior_is_used_and_none_means_uniform_epsilon(tiny_dir):
    net = build(tiny_dir)
    original, edited = pair()
    epsilon = torch.full((2, 1, 70, 70), 0.01)
    spot = torch.full((2, 1, 70, 70), 0.01)
    spot[..., 10:40, 10:40] = 1.0
    with torch.inference_mode():
        default = net(original, edited).logits
        uniform = net(original, edited, epsilon).logits
        focused = net(original, edited, spot)
    # Same computation; float32 attention over every key of every level (pool 1) sums
    # in another order when the prior is built in the head: agree to 1e-4.
    torch.testing.assert_close(default, uniform, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(default, focused.logits)
    # The prior is area-pooled to the 5x5 grid: token (1, 1) covers pixels 14..27, all 1.
    assert float(focused.instruction_prior[0, 0, 1, 1]) == pytest.approx(1.0)
    assert float(focused.instruction_prior[0, 0, 4, 4]) == pytest.approx(0.01)


def test_ablation_single_level(tiny_dir):
    net = build(tiny_dir, backbone={"layers": (11,)})
    assert len(net.sigma_head.decoder.pyramid.laterals) == 1
    assert net.backbone.num_blocks_run == 12
    with torch.inference_mode():
        out = net(*pair())
    assert out.logits.shape == (2, 1, 70, 70)
    assert out.difference_maps.shape == (2, 1, 5, 5)
    shallow = build(tiny_dir, backbone={"layers": (2,)})
    assert shallow.backbone.num_blocks_run == 3


@pytest.mark.parametrize("num_drb", [0, 2, 4, 8])
def test_ablation_number_of_drbs(tiny_dir, num_drb):
    net = build(tiny_dir, num_drb=num_drb)
    assert len(net.sigma_head.refinement.blocks) == num_drb
    with torch.inference_mode():
        assert net(*pair(1)).logits.shape == (1, 1, 70, 70)


def test_ablation_without_instruction_branch(tiny_dir):
    with_branch = build(tiny_dir)
    without = build(tiny_dir, use_instruction=False)
    assert not hasattr(without.sigma_head, "instruction")
    assert not hasattr(without.sigma_head, "cross_modal")
    fewer = sum(p.numel() for p in without.sigma_head.parameters())
    assert fewer < sum(p.numel() for p in with_branch.sigma_head.parameters())
    original, edited = pair()
    spot = torch.zeros(2, 1, 70, 70)
    with torch.inference_mode():
        plain = without(original, edited)
        ignored = without(original, edited, spot)
    assert plain.instruction_prior is None and plain.instruction_evidence is None
    torch.testing.assert_close(plain.logits, ignored.logits)


def test_other_switches_change_the_structure(tiny_dir):
    no_cross = build(tiny_dir, drb_cross_level=False)
    assert not hasattr(no_cross.sigma_head.refinement.blocks[0], "cross_attn")
    only_cos = build(tiny_dir, difference_features=("cosine",), keep_raw_features=False)
    assert only_cos.sigma_head.difference.levels[0].proj.in_channels == 1
    full = build(tiny_dir)
    assert full.sigma_head.difference.levels[0].proj.in_channels == 4 * 64 + 1
    no_bcmr = build(tiny_dir, bcmr_steps=0)
    with torch.inference_mode():
        out = no_bcmr(*pair(1))
    assert out.logits.shape == (1, 1, 70, 70)


def test_backbone_can_be_shared_between_heads(tiny_dir):
    net = build(tiny_dir)
    other = SigmaNet(tiny_sigma_config(str(tiny_dir), image_size=70, num_drb=0), net.backbone)
    assert other.backbone is net.backbone
    assert isinstance(other.backbone, DinoBackbone)


@pytest.mark.parametrize("pool, keys_per_level", [(1, 7 * 5), (2, 4 * 3), (3, 3 * 2)])
def test_cross_level_attention_pools_keys_not_queries(pool, keys_per_level):
    """Cross-level keys/values are average-pooled by ``drb_cross_level_pool`` (partial
    windows included); the queries, and so the output, stay at every token."""
    from sigma_iml.models.refinement import DifferenceRefinementBlock

    torch.manual_seed(0)
    block = DifferenceRefinementBlock(16, 2, 3, 2.0, cross_level_pool=pool).eval()
    seen = {}
    block.cross_attn.register_forward_hook(
        lambda m, args, out: seen.update(q=args[0].shape, k=args[1].shape)
    )
    tokens = torch.randn(2, 3, 7 * 5, 16)
    out = block(tokens, torch.randn(7 * 5, 16), (7, 5))
    assert out.shape == tokens.shape
    assert seen["q"] == (2, 3 * 35, 16) and seen["k"] == (2, 3 * keys_per_level, 16)
    if pool > 1:
        # A pooled key of a constant region is that constant: pooling averages tokens.
        flat = torch.ones(1, 3, 35, 16)
        assert torch.allclose(block._pooled(flat, (7, 5)), torch.ones(1, 3, keys_per_level, 16))
