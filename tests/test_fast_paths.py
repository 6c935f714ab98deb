"""The shortcuts the IFNet takes instead of the official computation give the official numbers.

The golden files check the whole network at processing scales 1.0 and 0.5; these tests check each shortcut on
its own and the whole network at every other scale against the plain official path."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_core import IMAGE_ATOL, read_png, synthetic_tensors

import rife.ifnet
from rife import ARCHS
from rife.ifnet import IFBlock, ResConv, _assemble, _carry_at, _resize, _subpixel_conv
from rife.model import SCALES


def official_carry(carry: torch.Tensor, carry_factor: float, factor: float) -> torch.Tensor:
    """What the official code feeds a block: upsampled to full resolution, then resized by 1/factor."""
    return _resize(_resize(carry, carry_factor), 1.0 / factor)


@pytest.mark.parametrize(
    ("carry_factor", "factor"),
    [(32, 16), (16, 8), (8, 4), (4, 2), (2, 1), (16, 4), (32, 2), (4, 1), (8, 8), (4, 4), (1, 0.5), (2, 0.5),
     (0.5, 0.25), (8, 0.5), (12, 6), (6, 2)],
)  # fmt: skip
def test_carry_shortcut_equals_the_full_resolution_detour(carry_factor: float, factor: float) -> None:
    size = int(96 / min(carry_factor, 1))  # full resolution 96 x 192 (x 2 or 4 for the fractional factors)
    full = (size, size * 2)
    if any(side % carry_factor or side % factor for side in full):
        pytest.skip("size not divisible")
    carry = torch.randn(2, 9, int(full[0] / carry_factor), int(full[1] / carry_factor), generator=gen(0))
    expected = official_carry(carry, carry_factor, factor)
    got = _carry_at(carry, carry_factor, factor)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= 1e-5


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("group", ["4.0", "4.6", "4.25"])
def test_head_as_subpixel_conv_matches_the_transposed_conv(group: str, synthetic) -> None:
    """The 3x3 conv + pixel_shuffle head equals the official ConvTranspose2d (+ PixelShuffle), also when only
    the first channels are kept."""
    spec = ARCHS[group]
    block = IFBlock(spec, in_channels=spec.block_in_channels(1), width=spec.block_widths[1])
    state = synthetic_tensors(synthetic, group)
    block.load_state_dict({k[len("block1.") :]: v for k, v in state.items() if k.startswith("block1.")})
    feat = torch.randn(1, spec.block_widths[1], 12, 20, generator=gen(1))
    with torch.inference_mode():
        expected = block.lastconv(feat)
        deconv = block.lastconv[0] if isinstance(block.lastconv, torch.nn.Sequential) else block.lastconv
        for keep in (None, 5):
            weight, bias, shuffle = _subpixel_conv(
                deconv.weight, deconv.bias, merge_shuffle=spec.pixel_shuffle_head, keep=keep
            )
            got = F.pixel_shuffle(F.conv2d(feat, weight, bias, padding=1), shuffle)
            want = expected if keep is None else expected[:, :keep]
            assert got.shape == want.shape
            assert (got - want).abs().max() <= 1e-4


def test_resconv_with_folded_beta_matches_the_official_formula() -> None:
    unit = ResConv(channels=16, groups=2)
    torch.nn.init.uniform_(unit.beta, 0.2, 0.6)
    x = torch.randn(1, 16, 10, 14, generator=gen(2))
    with torch.inference_mode():
        expected = F.leaky_relu(unit.conv(x) * unit.beta + x, 0.2)
        assert (unit(x) - expected).abs().max() <= 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_assembled_block_input_equals_cat(dtype: torch.dtype) -> None:
    """Pieces of mixed precision (the warps and resizes come in fp32) are cast to the network's dtype."""
    parts = (torch.randn(3, 3, 8, 10).to(dtype), torch.rand(3, 1, 1, 1).to(dtype).expand(3, 1, 8, 10))
    parts += (torch.randn(3, 7, 8, 10)[:, 2:5],)  # fp32, not contiguous
    out = _assemble(parts, dtype=dtype)
    assert out.dtype == dtype
    assert torch.equal(out, torch.cat([p.to(dtype) for p in parts], 1))


@pytest.mark.parametrize("scale", SCALES)
def test_network_equals_the_plain_path_at_every_scale(scale: float, real_model, frames_dir: Path, monkeypatch) -> None:
    """With the sparse warps and the one-step mask/feature resize switched off, the network computes the
    official full-resolution path; both must agree at every processing scale (goldens cover 1.0 and 0.5)."""
    side = real_model.pad_multiple(scale)
    img0, img1 = (read_png(frames_dir / "demo_pair" / f"I0_{i}.png")[None, :, :side, :side] for i in (0, 1))
    t = torch.tensor([0.3])
    with torch.inference_mode():
        fast = real_model.net(img0, img1, t, scale=scale)
        monkeypatch.setattr(rife.ifnet, "_carry_at", official_carry)
        monkeypatch.setattr(rife.ifnet, "_sparse_resize", lambda factor, height, width: False)
        plain = real_model.net(img0, img1, t, scale=scale)
    assert (fast - plain).abs().max() <= IMAGE_ATOL


@pytest.mark.parametrize("group", ["4.0", "4.6", "4.21"])
def test_older_layouts_equal_the_plain_path_at_every_scale(
    group: str, synthetic, frames_dir: Path, monkeypatch
) -> None:
    """The same for layouts whose mask accumulates (4.0, 4.6) or that pass features over four blocks (4.21)."""
    net = rife.ifnet.IFNet(ARCHS[group])
    net.load_state_dict(synthetic_tensors(synthetic, group))
    img0, img1 = (read_png(frames_dir / "demo_pair" / f"I0_{i}.png")[None, :, :128, 64:192] for i in (0, 1))
    t = torch.tensor([0.6])
    results = []
    with torch.inference_mode():
        for scale, plain in itertools.product((0.25, 1.0, 2.0), (False, True)):
            if plain:
                monkeypatch.setattr(rife.ifnet, "_carry_at", official_carry)
                monkeypatch.setattr(rife.ifnet, "_sparse_resize", lambda factor, height, width: False)
            results.append(net(img0, img1, t, scale=scale))
            monkeypatch.undo()
    for fast, plain in zip(results[::2], results[1::2], strict=True):
        assert (fast - plain).abs().max() <= IMAGE_ATOL


def test_derived_weights_are_computed_once_and_dropped_when_the_weights_change(synthetic, monkeypatch) -> None:
    """The subpixel heads and folded betas are derived once per parameter version; load_state_dict, .to() and
    in-place edits of a parameter make the network derive them again (stale ones would give other numbers)."""
    spec = ARCHS["4.25"]
    state = synthetic_tensors(synthetic, "4.25")
    net = rife.ifnet.IFNet(spec)
    net.load_state_dict(state)
    derivations = []
    original = rife.ifnet._subpixel_conv
    monkeypatch.setattr(rife.ifnet, "_subpixel_conv", lambda *a, **k: derivations.append(1) or original(*a, **k))
    img0, img1 = torch.rand(1, 3, 64, 64, generator=gen(3)), torch.rand(1, 3, 64, 64, generator=gen(4))
    t = torch.tensor([0.5])

    def run(network: rife.ifnet.IFNet) -> torch.Tensor:
        with torch.inference_mode():
            return network(img0.to(next(network.parameters()).dtype), img1.to(next(network.parameters()).dtype), t)

    first = run(net)
    assert len(derivations) == spec.num_blocks
    assert torch.equal(run(net), first) and len(derivations) == spec.num_blocks  # reused

    changed = {k: v * 0.5 if ("lastconv" in k or "beta" in k) else v for k, v in state.items()}
    net.load_state_dict(changed)
    fresh = rife.ifnet.IFNet(spec)
    fresh.load_state_dict(changed)
    assert torch.equal(run(net), run(fresh)) and not torch.equal(run(net), first)

    with torch.no_grad():
        net.block4.convblock[0].beta.mul_(3.0)  # an in-place edit: the parameter's version changes
        fresh.block4.convblock[0].beta.mul_(3.0)
    assert torch.equal(run(net), run(fresh))

    net.to(torch.float64)  # a stale fp32 head would fail (dtype mismatch) or differ
    assert run(net).dtype == torch.float64
    assert (run(net) - run(fresh.to(torch.float64))).abs().max() == 0


def test_derived_weights_are_not_cached_while_training(synthetic) -> None:
    """With gradients enabled the heads are derived on every call, so gradients reach the parameters."""
    net = rife.ifnet.IFNet(ARCHS["4.25"])
    net.load_state_dict(synthetic_tensors(synthetic, "4.25"))
    img = torch.rand(1, 3, 64, 64, generator=gen(5))
    net(img, img.flip(-1), torch.tensor([0.5])).mean().backward()
    assert net.block4.lastconv[0].weight.grad is not None and net.block0.convblock[0].beta.grad is not None
    assert not net.block4._derived


def test_derived_weights_work_with_parameters_loaded_in_inference_mode(synthetic) -> None:
    """ComfyUI loads weights under inference mode: such parameters have no version counter."""
    with torch.inference_mode():
        net = rife.ifnet.IFNet(ARCHS["4.25"])
        net.load_state_dict(synthetic_tensors(synthetic, "4.25"))
        img = torch.rand(1, 3, 64, 64, generator=gen(6))
        first = net(img, img.flip(-1), torch.tensor([0.5]))
        assert torch.equal(net(img, img.flip(-1), torch.tensor([0.5])), first)
