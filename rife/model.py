"""The loaded model: an :class:`~rife.ifnet.IFNet` plus what callers need around it (device, precision,
padding to the layout's size multiple, a single-pair ``infer``)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .arch import ArchSpec, check_ensemble
from .errors import InvalidInputError
from .ifnet import IFNet, pad_to_multiple
from .loading import build_net, read_state_dict, resolve_checkpoint
from .validate import SCALES as SCALES
from .validate import check_pixel_values, check_scale

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def default_device() -> torch.device:
    """Best device available now: CUDA, then Apple MPS, then CPU (decided at call time, never at import)."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (x86 AVX512-BF16 or AMX), asked of the hardware now."""
    cpu = getattr(torch, "cpu", None)
    checks = (getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(check is not None and bool(check()) for check in checks)


def auto_dtype(device: torch.device) -> torch.dtype:
    """The precision ``"auto"`` picks for ``device``: bfloat16 on CPUs with native bf16, where it computes
    720p in-betweens about 1.4x faster with frames within 60 dB PSNR of fp32 (docs/performance.md); fp32
    everywhere else (GPUs: choose fp16/bf16 explicitly; not measured here)."""
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


def resolve_dtype(dtype: torch.dtype | str | None, device: torch.device | None = None) -> torch.dtype:
    """A precision given as a dtype, a name (fp32, fp16, bf16) or ``"auto"`` (see :func:`auto_dtype`)."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        if dtype == "auto":
            return auto_dtype(device if device is not None else torch.device("cpu"))
        if dtype not in DTYPES:
            raise InvalidInputError(f"Unknown precision {dtype!r}: use auto or one of {', '.join(DTYPES)}.")
        return DTYPES[dtype]
    if dtype not in DTYPES.values():
        raise InvalidInputError(f"Unsupported dtype {dtype}: use torch.float32, torch.float16 or torch.bfloat16.")
    return dtype


def pick_scale(height: int, width: int) -> float:
    """Processing scale for a frame size: 1.0 up to about 2K, 0.5 for 4K (as ``--UHD``), 0.25 beyond 8K."""
    pixels = height * width
    if pixels > 4 * 3840 * 2160:
        return 0.25
    if pixels > 2560 * 1440:
        return 0.5
    return 1.0


class RIFEModel:
    """A RIFE 4.x network ready to interpolate: detected layout, device and precision, padding rules."""

    def __init__(self, net: IFNet, *, source: Path | None = None) -> None:
        self.net = net
        self.source = source

    @property
    def spec(self) -> ArchSpec:
        return self.net.spec

    @property
    def arch(self) -> str:
        """The detected layout, spelled as the group keys of golden/specs.json (e.g. ``"4.25"``)."""
        return self.spec.name

    @property
    def versions(self) -> tuple[str, ...]:
        return self.spec.versions

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.net.parameters()).dtype

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | str | None = None) -> RIFEModel:
        """Move (in place) to ``device`` and/or ``dtype`` (``"auto"``: see :func:`auto_dtype`); returns self."""
        target = torch.device(device) if device is not None else self.device
        self.net.to(device=target, dtype=resolve_dtype(dtype, target) if dtype else None)
        return self

    def pad_multiple(self, scale: float = 1.0) -> int:
        return self.spec.pad_multiple_at(check_scale(scale))

    def __repr__(self) -> str:
        return f"RIFEModel({self.spec.label}, arch={self.arch!r}, device={self.device}, dtype={self.dtype})"

    @torch.inference_mode()
    def infer(
        self,
        img0: Tensor,
        img1: Tensor,
        timestep: float | Tensor = 0.5,
        scale: float = 1.0,
        *,
        ensemble: bool = False,
    ) -> Tensor:
        """Frame(s) between ``img0`` and ``img1`` at ``timestep``.

        ``img0``, ``img1``: [N,3,H,W] float in 0..1, any H and W; ``timestep``: float or [N] tensor in [0, 1];
        ``ensemble``: the official option of RIFE <= 4.20 and 4.24 (each block also sees the reversed pair,
        about twice the work); other layouts raise :class:`InvalidInputError`.
        Returns [N,3,H,W] in the input's float dtype on the input's device (computed on the model's device)."""
        scale = check_scale(scale)
        check_ensemble(self.spec, ensemble)
        if img0.ndim != 4 or img0.shape != img1.shape or img0.shape[1] != 3:
            raise InvalidInputError(
                f"img0 and img1 must both be [N,3,H,W] tensors of the same shape, got {tuple(img0.shape)} and "
                f"{tuple(img1.shape)}."
            )
        if not (img0.is_floating_point() and img1.is_floating_point()):
            raise InvalidInputError(f"img0 and img1 must be float tensors in 0..1, got {img0.dtype} and {img1.dtype}.")
        check_pixel_values(img0, "img0 frame")
        check_pixel_values(img1, "img1 frame")
        n, _, height, width = img0.shape
        t = torch.as_tensor(timestep, dtype=torch.float32).flatten()
        if t.numel() == 1:
            t = t.expand(n)
        if t.numel() != n or not bool(((t >= 0) & (t <= 1)).all()):
            raise InvalidInputError(
                f"timestep must be a float or an [N] tensor with values in [0, 1], got {timestep!r}."
            )
        out_dtype = img0.dtype
        multiple = self.pad_multiple(scale)
        x0, x1 = (pad_to_multiple(x.to(self.device, self.dtype).clamp(0, 1), multiple) for x in (img0, img1))
        t = t.to(self.device)
        out = self.net(x0, x1, t, scale=scale, ensemble=ensemble)[..., :height, :width]
        with torch.inference_mode(False):  # an ordinary tensor: the caller may use it in autograd or in place
            return out.to(img0.device, out_dtype, copy=True)


def load_model(
    path: str | Path,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = torch.float32,
) -> RIFEModel:
    """Load a RIFE 4.x checkpoint (file or directory) and detect its layout from the weights.

    ``device`` None picks CUDA, MPS or CPU now; ``dtype`` is fp32 unless fp16/bf16 is asked for; ``"auto"``
    picks bf16 on CPUs with native bf16 and fp32 elsewhere (:func:`auto_dtype`).
    Raises :class:`~rife.CheckpointError` for missing, unreadable, unsafe or unknown checkpoints."""
    file = resolve_checkpoint(path)
    net = build_net(read_state_dict(file), origin=file)
    model = RIFEModel(net, source=file)
    return model.to(device=device if device is not None else default_device(), dtype=dtype)
