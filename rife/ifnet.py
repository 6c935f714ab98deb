"""One parametrised IFNet for every RIFE 4.x layout, built from an :class:`~rife.arch.ArchSpec`.

The math follows the official implementation (Practical-RIFE / vs-rife) exactly: each block sees the frames
(warped by the running flow), the encoder features (warped likewise), the timestep plane, the mask and the
features passed from the previous block, all resized by the block's scale; it predicts a flow update, a mask
logit and (4.21+) features for the next block. Module and parameter names match the official state dicts,
so checkpoints load with ``strict=True``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .arch import ArchSpec, check_ensemble

RETRY_FLOW_LIMIT = 32.0  # px; the 4.0/4.1 retry rule fires when block 1 moves both halves further
# Replicate padding measured better than the official zero padding near the borders of real frames
# (bench/padding.py); it never changes the frames' own pixels, only what the network sees beyond them.
PAD_MODE = "replicate"


def _act(spec: ArchSpec, channels: int) -> nn.Module:
    return nn.PReLU(channels) if spec.body == "prelu" else nn.LeakyReLU(0.2, inplace=True)


def _conv_act(spec: ArchSpec, cin: int, cout: int, *, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=True), _act(spec, cout))


class _DerivedWeights(nn.Module):
    """A module that computes weights derived from its parameters (folded, rearranged) once and reuses them.

    Kept per key while the parameters stay the same tensors at the same version: ``.to()`` / ``.half()`` and
    ``load_state_dict`` drop them, and so does any in-place edit of a parameter (its version changes). With
    gradients enabled nothing is cached, so training still reaches the parameters."""

    def __init__(self) -> None:
        super().__init__()
        self._derived: dict[Any, tuple[tuple[tuple[int, int], ...], Any]] = {}

    def derived(self, key: Any, compute: Callable[[], Any]) -> Any:
        if torch.is_grad_enabled():
            return compute()
        # inference tensors (weights loaded under inference mode, as ComfyUI does) keep no version counter
        stamp = tuple((p.data_ptr(), 0 if p.is_inference() else p._version) for p in self.parameters())
        hit = self._derived.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        with torch.inference_mode(False):  # ordinary tensors: usable inside and outside inference mode
            value = compute()
        self._derived[key] = (stamp, value)
        return value

    def _apply(self, fn, recurse=True):  # .to(), .cuda(), .half(), ...
        self._derived.clear()
        return super()._apply(fn, recurse)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._derived.clear()
        super()._load_from_state_dict(*args, **kwargs)


class ResConv(_DerivedWeights):
    """``LeakyReLU(conv(x) * beta + x)``: the residual body unit of RIFE 4.5+."""

    def __init__(self, *, channels: int, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1, groups=groups)
        self.beta = nn.Parameter(torch.ones((1, channels, 1, 1)))

    def forward(self, x: Tensor) -> Tensor:
        weight, bias = self.derived("folded", self._folded)
        out = F.conv2d(x, weight, bias, padding=1, groups=self.conv.groups)
        return F.leaky_relu(out.add_(x), 0.2, inplace=True)

    def _folded(self) -> tuple[Tensor, Tensor]:
        """beta folded into the conv: one pass over the activations fewer, the same sums."""
        beta = self.beta.view(-1)
        return self.conv.weight * beta.view(-1, 1, 1, 1), self.conv.bias * beta


class IFBlock(_DerivedWeights):
    """One coarse-to-fine stage: from its (already resized) input predicts flow update, mask logit and features
    at the input's resolution (the caller upsamples them)."""

    def __init__(self, spec: ArchSpec, *, in_channels: int, width: int) -> None:
        super().__init__()
        self.outer_skip = spec.body == "prelu"
        self.conv0 = nn.Sequential(
            _conv_act(spec, in_channels, width // 2, stride=2), _conv_act(spec, width // 2, width, stride=2)
        )
        if spec.body == "resconv":
            body = [ResConv(channels=width, groups=spec.conv_groups) for _ in range(8)]
        else:
            body = [_conv_act(spec, width, width) for _ in range(8)]
        self.convblock = nn.Sequential(*body)
        if spec.pixel_shuffle_head:
            self.lastconv = nn.Sequential(
                nn.ConvTranspose2d(width, 4 * spec.head_channels, 4, 2, 1), nn.PixelShuffle(2)
            )
            self.head_upscale = 1.0  # the head returns the input's resolution
        else:
            self.lastconv = nn.ConvTranspose2d(width, spec.head_channels, 4, 2, 1)
            self.head_upscale = 2.0  # a bare ConvTranspose returns half the input's resolution

    def forward(self, x: Tensor, *, out_channels: int | None = None) -> Tensor:
        # x: [N,Cin,h,w] -> [N,out_channels,h,w] (or h/2, w/2 for the old bare head); out_channels keeps the
        # head's first channels only (the last block's passed features are never read)
        feat = self.conv0(x)
        feat = self.convblock(feat) + feat if self.outer_skip else self.convblock(feat)
        channels_last = feat.device.type == "cpu"  # oneDNN runs this wide conv about twice as fast in channels-last
        weight, bias, shuffle = self.derived(("head", out_channels, channels_last), lambda: self._head(out_channels))
        if channels_last:
            feat = feat.contiguous(memory_format=torch.channels_last)
        return F.pixel_shuffle(F.conv2d(feat, weight, bias, padding=1), shuffle)

    def _head(self, out_channels: int | None) -> tuple[Tensor, Tensor, int]:
        deconv = self.lastconv[0] if isinstance(self.lastconv, nn.Sequential) else self.lastconv
        weight, bias, shuffle = _subpixel_conv(
            deconv.weight, deconv.bias, merge_shuffle=self.head_upscale == 1.0, keep=out_channels
        )
        if weight.device.type == "cpu":
            weight = weight.contiguous(memory_format=torch.channels_last)
        return weight, bias, shuffle


def _subpixel_conv(
    weight: Tensor, bias: Tensor, *, merge_shuffle: bool, keep: int | None = None
) -> tuple[Tensor, Tensor, int]:
    """A ConvTranspose2d(kernel 4, stride 2, padding 1) as a 3x3 conv + pixel shuffle (the same sums, ordered
    differently): on CPU about a third faster than the NCHW transposed conv, about even with a channels-last one.
    With ``merge_shuffle`` the head's own PixelShuffle(2) is folded in (one pixel_shuffle(4)). ``keep`` limits
    the result to the first ``keep`` channels after the shuffle(s). :class:`IFBlock` caches the result.

    Output row 2y+a of the transposed conv reads input rows y-1 (tap 3) and y (tap 1) for a=0, y (tap 2) and
    y+1 (tap 0) for a=1; columns likewise."""
    cin, cout = weight.shape[:2]
    taps = ((3, 1, None), (None, 2, 0))  # [phase][input offset -1, 0, +1] -> kernel tap
    conv = weight.new_zeros(cout, 2, 2, cin, 3, 3)  # [c, a, b, cin, dy, dx]
    for a in (0, 1):
        for b in (0, 1):
            for dy, ky in enumerate(taps[a]):
                for dx, kx in enumerate(taps[b]):
                    if ky is not None and kx is not None:
                        conv[:, a, b, :, dy, dx] = weight[:, :, ky, kx].t()
    bias = bias.view(cout, 1, 1).expand(cout, 2, 2)
    if not merge_shuffle:  # channel c*4 + a*2 + b, then pixel_shuffle(2)
        pattern, axes, shuffle = "c a b ... -> (c a b) ...", {}, 2
    else:
        # the head's PixelShuffle(2) splits c = c2*4 + a2*2 + b2; pixel_shuffle(4) wants c2*16 + (2a+a2)*4 + (2b+b2)
        pattern, axes, shuffle = "(c a2 b2) a b ... -> (c a a2 b b2) ...", {"a2": 2, "b2": 2}, 4
    conv, bias = rearrange(conv, pattern, **axes), rearrange(bias, pattern, **axes)
    rows = conv.shape[0] if keep is None else keep * shuffle * shuffle
    return conv[:rows], bias[:rows], shuffle


def _resize(x: Tensor, factor: float) -> Tensor:
    """Bilinear resize by ``factor`` exactly as the official blocks do (align_corners=False, no antialias)."""
    if factor == 1.0:
        return x
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


def _encoder(spec: ArchSpec) -> nn.Module | None:
    hidden, out = spec.encoder_hidden, spec.encoder_channels
    if spec.encoder == "none":
        return None
    if spec.encoder == "shallow":  # 4.7-4.9: no activation between the two layers
        return nn.Sequential(nn.Conv2d(3, hidden, 3, 2, 1), nn.ConvTranspose2d(hidden, out, 4, 2, 1))
    layers = [
        nn.Conv2d(3, hidden, 3, 2, 1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(hidden, hidden, 3, 1, 1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(hidden, hidden, 3, 1, 1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.ConvTranspose2d(hidden, out, 4, 2, 1),
    ]
    if spec.encoder == "sequential":  # 4.10-4.13 lite: keys encode.0/2/4/6
        return nn.Sequential(*layers)
    names = ("cnn0", "act0", "cnn1", "act1", "cnn2", "act2", "cnn3")  # Head of 4.13+: keys encode.cnnN
    return nn.Sequential(OrderedDict(zip(names, layers, strict=True)))


def base_grid(height: int, width: int, device: torch.device) -> Tensor:
    """Identity sampling grid [1,H,W,2] in grid_sample's normalised coordinates (fp32)."""
    xs = torch.linspace(-1.0, 1.0, width, device=device, dtype=torch.float32)
    ys = torch.linspace(-1.0, 1.0, height, device=device, dtype=torch.float32)
    return torch.stack((xs.view(1, width).expand(height, width), ys.view(height, 1).expand(height, width)), -1)[None]


@dataclass(frozen=True)
class WarpGrid:
    """Sampling grid and flow normalisation for one padded frame size: build it once per size and pass it to
    :meth:`IFNet.flow` and :func:`blend` (the engine keeps one per run)."""

    base: Tensor  # [1,H,W,2]
    norm: Tensor  # [2]: (W-1)/2, (H-1)/2

    @classmethod
    def for_size(cls, height: int, width: int, device: torch.device) -> WarpGrid:
        norm = torch.tensor([(width - 1.0) / 2.0, (height - 1.0) / 2.0], device=device, dtype=torch.float32)
        return cls(base_grid(height, width, device), norm)

    def fits(self, height: int, width: int) -> bool:
        return tuple(self.base.shape[1:3]) == (height, width)

    def subset(self, rows: Tensor, cols: Tensor) -> WarpGrid:
        """The grid at a subset of pixels (same normalisation: the flow still refers to the full frame)."""
        return WarpGrid(self.base.index_select(1, rows).index_select(2, cols), self.norm)


def warp(img: Tensor, flow: Tensor, grid: WarpGrid) -> Tensor:
    """Backward-warp ``img`` [N,C,H,W] by ``flow`` [N,2,h,w] (pixels) at the pixels of ``grid``, like the
    official warp: bilinear, border padding, align_corners=True, flow normalised by (W-1)/2 and (H-1)/2.

    Computed in fp32 whatever the model dtype; the result has ``img``'s dtype. Border padding
    is expressed as a clamp of the grid (identical for bilinear with align_corners=True), so the same code runs
    on MPS, which has no 'border' mode."""
    coords = torch.addcdiv(grid.base, flow.float().permute(0, 2, 3, 1), grid.norm).clamp_(-1.0, 1.0)
    if img.shape[0] != coords.shape[0]:
        img = img.expand(coords.shape[0], -1, -1, -1)
    padding = "zeros" if coords.device.type == "mps" else "border"
    out = F.grid_sample(img.float(), coords, mode="bilinear", padding_mode=padding, align_corners=True)
    return out.to(img.dtype)


@dataclass
class PreparedFrame:
    """A padded frame as the network reads it; build with :meth:`IFNet.prepare` and reuse it for every
    timestep and both pairs the frame belongs to (the encoder and the first block's resize run once)."""

    image: Tensor  # [N,C,H,W] (C = 3, or 4: an alpha channel is warped along but not seen by the network)
    stack: Tensor  # [N,3+E,H,W]: RGB and encoder features, the channels the blocks warp
    downscaled: dict[float, Tensor] = field(default_factory=dict)  # factor -> resized stack (block 0 input)
    parts: tuple[PreparedFrame, ...] = ()  # the frames a batch was built from (their resized stacks are reused)
    wide: Tensor | None = None  # the stack in fp32, which every warp reads (made once, on the first warp)

    @classmethod
    def batch(cls, frames: Sequence[PreparedFrame]) -> PreparedFrame:
        """One frame per sample as a batch; one frame for every sample stays that frame (shared, batch 1)."""
        first = frames[0]
        if all(frame is first for frame in frames):
            return first
        image, stack = (torch.cat([getattr(f, name) for f in frames]) for name in ("image", "stack"))
        return cls(image, stack, parts=tuple(frames))

    def resized(self, factor: float) -> Tensor:
        if factor not in self.downscaled:
            if self.parts:
                self.downscaled[factor] = torch.cat([part.resized(factor) for part in self.parts])
            else:
                self.downscaled[factor] = _resize(self.stack, 1.0 / factor)
        return self.downscaled[factor]

    def warped(self, flow: Tensor, grid: WarpGrid) -> Tensor:
        """The stack warped by ``flow`` at the pixels of ``grid`` (:func:`warp`), in fp32 whatever the stack's
        dtype: the caller resizes it first and casts it while assembling the block input (one pass fewer).

        A bf16/fp16 stack is widened to fp32 once per frame instead of once per warp: the later blocks warp
        it about eight times per in-between, each time at full resolution."""
        return warp(self._widened(), flow, grid)

    def _widened(self) -> Tensor:
        if self.wide is None:
            self.wide = torch.cat([p._widened() for p in self.parts]) if self.parts else self.stack.float()
        return self.wide

    def select(self, index: int) -> PreparedFrame:
        """The ``index``-th frame of a batch (itself when the batch has one frame)."""
        if self.image.shape[0] == 1:
            return self
        return PreparedFrame(self.image[index : index + 1], self.stack[index : index + 1])


class IFNet(nn.Module):
    """The RIFE 4.x flow network for one :class:`ArchSpec`; frames must already be padded."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.spec = spec
        for i, width in enumerate(spec.block_widths):
            self.add_module(f"block{i}", IFBlock(spec, in_channels=spec.block_in_channels(i), width=width))
        encoder = _encoder(spec)
        if encoder is not None:
            self.encode = encoder

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def blocks(self) -> list[IFBlock]:
        return [getattr(self, f"block{i}") for i in range(self.spec.num_blocks)]

    def prepare(self, image: Tensor) -> PreparedFrame:
        """Encode a padded frame batch [N,C,H,W] once for any number of later :meth:`flow` calls.

        ``image`` may be in a wider float type than the network (fp32 for a bf16/fp16 net): the blocks see it
        in the network's precision, while :func:`blend` warps the image as given, so the output's pixels are
        not rounded to the network's precision."""
        rgb = image[:, :3].to(self.dtype)
        stack = rgb if self.spec.encoder == "none" else torch.cat((rgb, self.encode(rgb)), 1)
        return PreparedFrame(image, stack)

    def flow(
        self,
        frame0: PreparedFrame,
        frame1: PreparedFrame,
        timestep: Tensor,
        *,
        scale: float = 1.0,
        grid: WarpGrid | None = None,
        ensemble: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """Final flow [N,4,H,W] (pixels; 0:2 warps frame0, 2:4 frame1) and mask logit [N,1,H,W] for the
        timesteps [N] (frames of batch 1 are shared by every timestep). ``grid`` is the frames' warp grid
        (built here when missing or for another size).

        ``ensemble`` (layouts with ``spec.ensemble``; InvalidInputError otherwise) is the official option:
        every block also runs on the reversed pair (frame1, frame0, 1 - t, -mask, swapped flow), stacked
        under the forward pair in the same batch, and the two predictions are averaged. As in the official
        code, the 4.0/4.1 retry rule looks at the forward half only and reruns block 0 without its reversed half."""
        check_ensemble(self.spec, ensemble)
        n = timestep.shape[0]
        if self.spec.retry_rule and n > 1:  # the 4.0 rule fires per sample: keep the samples independent
            samples = [(frame0.select(i), frame1.select(i), timestep[i : i + 1]) for i in range(n)]
            parts = [self.flow(*sample, scale=scale, grid=grid, ensemble=ensemble) for sample in samples]
            return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        height, width = frame0.image.shape[-2:]
        if grid is None or not grid.fits(height, width):
            grid = WarpGrid.for_size(height, width, frame0.image.device)
        t = timestep.to(frame0.stack.dtype).view(n, 1, 1, 1)
        scales = [s / scale for s in self.spec.scale_list]
        retried = False
        i = 0
        state: _Estimate | None = None
        while i < self.spec.num_blocks:
            block, factor = self.blocks[i], scales[i]
            last = i == self.spec.num_blocks - 1
            keep = 5 if last else 5 + self.spec.feat_channels  # flow, mask, [features]; the rest is never read
            mirrored = ensemble and not (retried and i == 0)  # [N] forward pair, then (mirrored) [N] reversed
            if state is None:
                x = self._first_input(frame0, frame1, t, factor, mirrored=mirrored)
            else:
                x = self._later_input(frame0, frame1, t, state, factor, grid, mirrored=mirrored)
            upscale = factor * block.head_upscale  # the head's output is at downscale `upscale`
            out = block(x, out_channels=keep)
            # full-resolution pixels, summed in fp32 whatever the network's dtype: a bf16 upsample is about twice
            # as slow on CPU, and every warp reads the flow in fp32 anyway
            d_flow = _wide(out[:, :4])
            if upscale != 1.0:
                d_flow = _resize(d_flow * upscale, upscale)
            if i == 1 and self.spec.retry_rule and not retried and _retry_fires(d_flow[:n]):
                # 4.0/4.1: the motion is too large for these scales; start over at twice the downscale,
                # which needs sizes divisible by twice as much: pad further (as if padded so from the start)
                multiple = int(8 * scales[0])
                if height % multiple or width % multiple:
                    big0, big1 = (self.prepare(pad_to_multiple(f.image, multiple)) for f in (frame0, frame1))
                    flow, mask = self.flow(big0, big1, timestep, scale=scale, ensemble=ensemble)
                    return flow[..., :height, :width], mask[..., :height, :width]
                scales, retried, state, i = [s * 2 for s in scales], True, None, 0
                continue
            carry = out[:, 4:keep]
            if mirrored:
                d_flow, carry = _average_halves(d_flow, carry)
            state = self._update(state, d_flow, carry, upscale)
            i += 1
        return state.flow, _carry_at(state.carry, state.carry_factor, 1.0)  # the last block's carry: the mask

    def _update(self, state: _Estimate | None, d_flow: Tensor, carry: Tensor, factor: float) -> _Estimate:
        """The running estimate after a block: flow summed at full resolution; the mask (and features)
        replaced, or, for the mask-accumulating layouts (<= 4.6), added at full resolution."""
        if state is None:
            return _Estimate(d_flow, carry, factor)
        if self.spec.mask_accumulates:
            mask = _carry_at(state.carry, state.carry_factor, 1.0) + _resize(carry, factor)
            return _Estimate(state.flow.add_(d_flow), mask, 1.0)
        return _Estimate(state.flow.add_(d_flow), carry, factor)

    def _first_input(
        self, frame0: PreparedFrame, frame1: PreparedFrame, t: Tensor, factor: float, *, mirrored: bool
    ) -> Tensor:
        # block 0 reads img0, img1, [f0, f1], timestep, all resized by 1/factor (cached per frame)
        small0, small1 = frame0.resized(factor), frame1.resized(factor)
        n = t.shape[0]
        small0, small1 = small0.expand(n, -1, -1, -1), small1.expand(n, -1, -1, -1)
        return _block_input(small0, small1, t.expand(n, 1, *small0.shape[-2:]), mirrored=mirrored, dtype=t.dtype)

    def _later_input(
        self, frame0, frame1, t, state: _Estimate, factor: float, grid: WarpGrid, *, mirrored: bool
    ) -> Tensor:
        """Block input: warped frames and features, timestep, mask, [passed features], resized flow
        (with ``mirrored``, the reversed pair's input below it: see :func:`_block_input`).

        The official code builds this at full resolution and then resizes it. A bilinear downscale by an even
        integer factor >= 4 reads just 2x2 pixels per cell, so there only those pixels are warped and averaged:
        the same numbers (up to float rounding) for a fraction of the work. Mask and features come from the
        previous block's resolution in one resize (:func:`_carry_at`)."""
        n = t.shape[0]
        flow = state.flow
        height, width = flow.shape[-2:]
        carry = _carry_at(state.carry, state.carry_factor, factor)
        # the warps come back in fp32 and are resized in fp32 (about twice as fast as bf16 on CPU, and the
        # resize shrinks what is cast): _assemble casts every piece to the network's dtype as it copies it in
        if _sparse_resize(factor, height, width):
            rows, cols = _cell_samples(height, factor, flow.device), _cell_samples(width, factor, flow.device)
            flow = flow.index_select(2, rows).index_select(3, cols)
            sub_grid = grid.subset(rows, cols)
            warped0, warped1 = frame0.warped(flow[:, :2], sub_grid), frame1.warped(flow[:, 2:4], sub_grid)
            warped0, warped1, small_flow = (F.avg_pool2d(x, 2) for x in (warped0, warped1, flow))
        else:
            warped0 = _resize(frame0.warped(flow[:, :2], grid), 1.0 / factor)
            warped1 = _resize(frame1.warped(flow[:, 2:4], grid), 1.0 / factor)
            small_flow = _resize(flow, 1.0 / factor)
        if factor != 1.0:
            small_flow = small_flow * (1.0 / factor)
        t_plane = t.expand(n, 1, *warped0.shape[-2:])
        return _block_input(warped0, warped1, t_plane, (carry, small_flow), mirrored=mirrored, dtype=t.dtype)

    def forward(
        self, img0: Tensor, img1: Tensor, timestep: Tensor, scale: float = 1.0, *, ensemble: bool = False
    ) -> Tensor:
        """Interpolated frames [N,C,H,W] (not clamped) between padded ``img0`` and ``img1`` at ``timestep`` [N]."""
        frame0, frame1 = self.prepare(img0), self.prepare(img1)
        flow, mask = self.flow(frame0, frame1, timestep, scale=scale, ensemble=ensemble)
        return blend(frame0.image, frame1.image, flow, mask)


@dataclass
class _Estimate:
    """What one block hands the next: the summed flow [N,4,H,W] (full-resolution pixels) and the mask logit
    (and passed features) [N,1+F,h,w] at downscale ``carry_factor``, where the block produced them."""

    flow: Tensor
    carry: Tensor
    carry_factor: float


def _carry_at(carry: Tensor, carry_factor: float, factor: float) -> Tensor:
    """``carry`` (at downscale ``carry_factor``) as the official code feeds it to a block at downscale
    ``factor``: upsampled to full resolution, then resized by 1/factor.

    When ``carry_factor / factor`` is a power of two >= 2 and ``factor`` an even integer, that equals a single
    bilinear upsampling by ``carry_factor / factor`` (the downscale averages two upsampled pixels on the same
    linear piece, at the mean of their positions), which skips the full-resolution detour. The result is fp32:
    a bf16 resize is about twice as slow on CPU, and the block input casts it back while copying it in."""
    carry = _wide(carry)
    if factor == 1.0:
        return _resize(carry, carry_factor)
    ratio = carry_factor / factor
    if ratio >= 2 and _power_of_two(ratio) and _even_integer(factor):
        return _resize(carry, ratio)
    return _resize(_resize(carry, carry_factor), 1.0 / factor)


def _wide(x: Tensor) -> Tensor:
    """``x`` in fp32 and NCHW-contiguous: a CPU bilinear resize of a few channels in channels-last (as the
    heads produce them) is up to twice as slow."""
    return x.to(torch.float32, memory_format=torch.contiguous_format)


def _power_of_two(x: float) -> bool:
    return x == int(x) and int(x) > 0 and int(x) & (int(x) - 1) == 0


def _even_integer(x: float) -> bool:
    return x == int(x) and int(x) % 2 == 0


def _block_input(
    stack0: Tensor,
    stack1: Tensor,
    t_plane: Tensor,
    carry_flow: tuple[Tensor, Tensor] | None = None,
    *,
    mirrored: bool,
    dtype: torch.dtype,
) -> Tensor:
    """A block's input [N,C,h,w] in ``dtype`` (the pieces may be wider): rgb0, rgb1, [features0, features1],
    timestep, then for later blocks the carry (mask, [features]) and the flow. With ``mirrored`` (ensemble)
    [2N,C,h,w]: below it the reversed pair's input, rgb1, rgb0, [features1, features0], 1 - timestep, -mask,
    flow with its halves swapped (ensemble layouts carry the mask only)."""
    tail = () if carry_flow is None else carry_flow
    rows = [(*_interleave(stack0, stack1), t_plane, *tail)]
    if mirrored:
        if carry_flow is not None:
            carry, flow = carry_flow
            tail = (-carry, _swap_halves(flow))
        rows.append((*_interleave(stack1, stack0), 1.0 - t_plane, *tail))
    return _assemble(*rows, dtype=dtype)


def _swap_halves(flow: Tensor) -> Tensor:
    """[N,4,...] flow of the pair (a, b) as the flow of the pair (b, a)."""
    return torch.cat((flow[:, 2:4], flow[:, :2]), 1)


def _average_halves(d_flow: Tensor, carry: Tensor) -> tuple[Tensor, Tensor]:
    """Ensemble: the forward half [:N] of a block's prediction averaged with its reversed half [N:] mapped
    back to the forward pair (flow halves swapped, mask negated), as the official code does."""
    n = d_flow.shape[0] // 2
    return (d_flow[:n] + _swap_halves(d_flow[n:])) / 2, (carry[:n] - carry[n:]) / 2


def _assemble(*rows: tuple[Tensor, ...], dtype: torch.dtype) -> Tensor:
    """Concatenate each row's block-input pieces along channels, cast to ``dtype``, and stack the rows along
    the batch; on CPU into a channels-last tensor, which the first (strided) conv of a block runs about 3x
    faster (oneDNN) and which costs no more to fill than a plain cat. Each piece is cast before it is copied
    in: a casting copy into channels-last is about twice as slow as a cast and a plain copy."""
    first = rows[0][0]
    if first.device.type != "cpu":
        return torch.cat([torch.cat([p.to(dtype) for p in parts], 1) for parts in rows])
    channels = sum(p.shape[1] for p in rows[0])
    shape = (first.shape[0] * len(rows), channels, *first.shape[2:])
    out = torch.empty(shape, dtype=dtype, device=first.device, memory_format=torch.channels_last)
    for row, parts in enumerate(rows):
        rows_out = out[row * first.shape[0] : (row + 1) * first.shape[0]]
        start = 0
        for part in parts:
            rows_out[:, start : start + part.shape[1]].copy_(part.to(dtype))
            start += part.shape[1]
    return out


def _interleave(stack0: Tensor, stack1: Tensor) -> list[Tensor]:
    """Channel order of the official block input: rgb0, rgb1, [features0, features1]."""
    parts = [stack0[:, :3], stack1[:, :3]]
    if stack0.shape[1] > 3:
        parts += [stack0[:, 3:], stack1[:, 3:]]
    return parts


def _sparse_resize(factor: float, height: int, width: int) -> bool:
    """Whether a bilinear downscale by ``factor`` reads just 2x2 pixels of each ``factor``-wide cell."""
    return factor >= 4 and _even_integer(factor) and height % factor == 0 and width % factor == 0


def _cell_samples(size: int, factor: float, device: torch.device) -> Tensor:
    """Indices of the two pixels per ``factor``-wide cell that a bilinear downscale reads
    (align_corners=False: source = factor*o + factor/2 - 0.5, i.e. pixels factor*o + factor/2 - 1 and + 0)."""
    step = int(factor)
    first = torch.arange(size // step, device=device) * step + (step // 2 - 1)
    return torch.stack((first, first + 1), 1).flatten()


def blend(img0: Tensor, img1: Tensor, flow: Tensor, mask_logit: Tensor, grid: WarpGrid | None = None) -> Tensor:
    """``warp(img0) * m + warp(img1) * (1 - m)`` with ``m = sigmoid(mask_logit)``: the network's output.
    Every channel is warped, so an alpha channel moves with the colour."""
    if grid is None or not grid.fits(*flow.shape[-2:]):
        grid = WarpGrid.for_size(*flow.shape[-2:], flow.device)
    warped0, warped1 = warp(img0, flow[:, :2], grid), warp(img1, flow[:, 2:4], grid)
    return torch.lerp(warped1, warped0, torch.sigmoid(mask_logit.to(warped0.dtype)))  # one pass instead of four


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Pad [N,C,H,W] on the right and bottom up to multiples of ``multiple`` (mode :data:`PAD_MODE`)."""
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if not pad_h and not pad_w:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode=PAD_MODE)


def _retry_fires(d_flow: Tensor) -> bool:
    return bool(d_flow[:, :2].abs().max() > RETRY_FLOW_LIMIT and d_flow[:, 2:4].abs().max() > RETRY_FLOW_LIMIT)
