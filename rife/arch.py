"""Architecture descriptors: one small :class:`ArchSpec` per RIFE 4.x checkpoint layout ("group").

Every RIFE 4.x release is one of 17 layouts; versions that share a layout also share the forward pass, so a
group is fully described by a handful of facts (block widths, body type, encoder, head, mask rule, ...).
The network (:mod:`rife.ifnet`) is built from a spec, and the loader recognises a checkpoint by comparing
its keys and shapes with the state dict each spec builds, so nothing here depends on file names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import InvalidInputError
from .validate import check_bool

Body = Literal["prelu", "plain", "resconv"]
EncoderKind = Literal["none", "shallow", "sequential", "head"]

FOUR_BLOCKS = (192, 128, 96, 64)
FOUR_SCALES = (8.0, 4.0, 2.0, 1.0)
FIVE_SCALES = (16.0, 8.0, 4.0, 2.0, 1.0)


@dataclass(frozen=True, kw_only=True)
class ArchSpec:
    """Facts that define one checkpoint layout and its forward pass."""

    name: str  # group key, spelled as in golden/specs.json, e.g. "4.25"
    versions: tuple[str, ...]  # releases with this layout, e.g. ("4.25", "4.26")
    block_widths: tuple[int, ...] = FOUR_BLOCKS
    scale_list: tuple[float, ...] = FOUR_SCALES  # downscale factor of each block at processing scale 1
    pad_multiple: int = 32  # H and W must be multiples of this at scale 1
    body: Body = "resconv"  # 8 convs per block: PReLU + outer skip, plain LeakyReLU, or residual with beta
    conv_groups: int = 1  # groups of the body 3x3 convs (2 in 4.14-lite)
    encoder: EncoderKind = "head"  # per-frame feature encoder and its key naming
    encoder_hidden: int = 16
    encoder_channels: int = 0  # feature channels per frame (0: no encoder)
    feat_channels: int = 0  # features one block passes to the next (4.21+)
    head_channels: int = 6  # channels of a block's output: flow 4 + mask 1 (+ unused 1) (+ features)
    pixel_shuffle_head: bool = True  # ConvTranspose + PixelShuffle (4.5+) or a bare ConvTranspose (4.0-4.4)
    mask_accumulates: bool = False  # mask = mask + block mask (<= 4.6) instead of being replaced
    retry_rule: bool = False  # 4.0/4.1: rerun with doubled scales when block 1's flow jumps > 32 px
    ensemble: bool = False  # the official forward has ensemble=True (<= 4.20 and 4.24): see IFNet.flow

    def __post_init__(self) -> None:
        if self.ensemble and self.feat_channels:  # the reversed half mirrors flow and mask, nothing else
            raise ValueError(f"{self.name}: ensemble is defined only for layouts without passed features")

    @property
    def num_blocks(self) -> int:
        return len(self.block_widths)

    @property
    def label(self) -> str:
        """Human-readable name, e.g. 'RIFE 4.25 / 4.26'."""
        return "RIFE " + " / ".join(self.versions)

    def block_in_channels(self, index: int) -> int:
        """Input channels of block ``index``'s first conv (the resized flow included)."""
        frames = 2 * (3 + self.encoder_channels)
        if index == 0:
            return frames + 1  # img0, img1, [f0, f1], timestep
        return frames + 1 + 1 + self.feat_channels + 4  # ..., timestep, mask, [feat], flow

    def pad_multiple_at(self, scale: float) -> int:
        """Multiple that H and W must be padded to at processing ``scale``."""
        return max(self.pad_multiple, int(self.pad_multiple / scale))


def _spec(name: str, versions: str, **facts) -> ArchSpec:
    return ArchSpec(name=name, versions=tuple(versions.split()), **facts)


_OLD_HEAD = dict(head_channels=5, pixel_shuffle_head=False, encoder="none", mask_accumulates=True, ensemble=True)
_FIVE = dict(scale_list=FIVE_SCALES, pad_multiple=64, feat_channels=8, head_channels=13, encoder_channels=4)

ARCHS: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        _spec("4.0", "4.0 4.1", body="prelu", retry_rule=True, **_OLD_HEAD),
        _spec("4.2", "4.2 4.3 4.4", body="plain", **_OLD_HEAD),
        _spec("4.5", "4.5", head_channels=5, encoder="none", mask_accumulates=True, ensemble=True),
        _spec("4.6", "4.6", encoder="none", mask_accumulates=True, ensemble=True),
        _spec("4.7", "4.7 4.8 4.9", encoder="shallow", encoder_channels=4, ensemble=True),
        _spec("4.10", "4.10 4.11 4.12", encoder="sequential", encoder_hidden=32, encoder_channels=8, ensemble=True),
        _spec(
            "4.12-lite",
            "4.12.lite 4.13.lite",
            block_widths=(128, 96, 64, 48),
            encoder="sequential",
            encoder_hidden=32,
            encoder_channels=4,
            ensemble=True,
        ),
        _spec("4.13", "4.13 4.14 4.15 4.17 4.18 4.19 4.24", encoder_hidden=32, encoder_channels=8, ensemble=True),
        _spec("4.14-lite", "4.14.lite", conv_groups=2, encoder_hidden=32, encoder_channels=8, ensemble=True),
        _spec(
            "4.15-lite",
            "4.15.lite 4.16.lite 4.17.lite",
            block_widths=(128, 96, 64, 48),
            encoder_channels=4,
            ensemble=True,
        ),
        _spec("4.20", "4.20", block_widths=(384, 192, 96, 48), encoder_hidden=32, encoder_channels=8, ensemble=True),
        _spec(
            "4.21",
            "4.21 4.22 4.23",
            block_widths=(256, 192, 96, 48),
            encoder_hidden=32,
            encoder_channels=8,
            feat_channels=8,
            head_channels=13,
        ),
        _spec(
            "4.22-lite",
            "4.22.lite",
            block_widths=(192, 128, 64, 32),
            encoder_channels=4,
            feat_channels=8,
            head_channels=13,
        ),
        _spec("4.25", "4.25 4.26", block_widths=(192, 128, 96, 64, 32), **_FIVE),
        _spec(
            "4.25-lite",
            "4.25.lite",
            block_widths=(192, 128, 96, 64, 24),
            **{**_FIVE, "scale_list": (32.0, 16.0, 8.0, 4.0, 1.0), "pad_multiple": 128},
        ),
        _spec("4.25-heavy", "4.25.heavy", block_widths=(384, 256, 192, 128, 64), **_FIVE),
        _spec(
            "4.26-heavy",
            "4.26.heavy",
            block_widths=(192, 128, 96, 64, 32),
            **{**_FIVE, "encoder_channels": 16},
        ),
    )
}

VERSION_TO_ARCH: dict[str, str] = {version: spec.name for spec in ARCHS.values() for version in spec.versions}

ENSEMBLE_VERSIONS: tuple[str, ...] = tuple(v for spec in ARCHS.values() if spec.ensemble for v in spec.versions)


def check_ensemble(spec: ArchSpec, ensemble: bool) -> bool:
    """``ensemble`` if the layout supports it; :class:`InvalidInputError` for a non-boolean or for a layout
    whose official code has no ensemble mode (4.21 and later, except 4.24)."""
    ensemble = check_bool(ensemble, "ensemble")
    if ensemble and not spec.ensemble:
        raise InvalidInputError(
            f"{spec.label} (layout {spec.name}) has no ensemble mode: the official code offers it only for "
            f"RIFE {', '.join(sorted(ENSEMBLE_VERSIONS, key=_version_key))}. "
            "Turn ensemble off or load one of those models."
        )
    return ensemble


def _version_key(version: str) -> tuple[int, int, str]:
    major, minor, *rest = version.split(".")
    return int(major), int(minor), ".".join(rest)
