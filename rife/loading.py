"""Safe checkpoint loading and architecture detection from the weights alone.

Checkpoints come from strangers: pickles are only ever opened with ``torch.load(weights_only=True)``, which
refuses anything but tensors and plain containers, and safetensors files carry no code at all. The layout is
recognised by comparing keys and shapes with the state dict each :class:`~rife.arch.ArchSpec` builds, so renamed
files (``rife47.pth``, ``flownet.pkl``, ``model.safetensors``) load the same, and the weights are then loaded
with ``strict=True``: a checkpoint either loads completely or fails with a message that says why.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from .arch import ARCHS, ArchSpec
from .errors import CheckpointError
from .ifnet import IFNet
from .layouts import to_official_layout

CHECKPOINT_SUFFIXES = (".pkl", ".pth", ".pt", ".ckpt", ".safetensors", ".bin")
PREFERRED_NAMES = ("flownet.pkl", "flownet.safetensors", "flownet.pth")
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net", "params", "flownet")
STRIPPED_PREFIXES = ("module.", "flownet.", "_orig_mod.")
TRAINING_ONLY_PREFIXES = ("teacher.", "caltime.")
OFFICIAL_WEIGHTS_HINT = "Official RIFE 4.x checkpoints are published in the hzwer/Practical-RIFE README."


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint file for ``path``: the file itself, or the one checkpoint inside a directory
    (``flownet.pkl`` first, as in the original ``ckpt/rifev4_25/`` layout)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"Checkpoint not found: {path}. {OFFICIAL_WEIGHTS_HINT}")
    if path.is_file():
        return path
    for name in PREFERRED_NAMES:
        if (path / name).is_file():
            return path / name
    candidates = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in CHECKPOINT_SUFFIXES)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise CheckpointError(
            f"No checkpoint in directory {path}: expected flownet.pkl or one file ending in "
            f"{', '.join(CHECKPOINT_SUFFIXES)}. {OFFICIAL_WEIGHTS_HINT}"
        )
    names = ", ".join(p.name for p in candidates)
    raise CheckpointError(f"Directory {path} holds several checkpoints ({names}); pass the file you want.")


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Inference tensors of a checkpoint file or directory, keys normalised to the official naming."""
    file = resolve_checkpoint(path)
    if file.stat().st_size == 0:
        raise CheckpointError(f"{file} is empty (0 bytes): the download or copy did not finish; re-download it.")
    raw = _read_safetensors(file) if _is_safetensors(file) else _read_pickle(file)
    return to_official_layout(normalize_state_dict(raw, origin=file))


def _is_safetensors(file: Path) -> bool:
    if file.suffix.lower() == ".safetensors":
        return True
    with open(file, "rb") as handle:  # safetensors starts with an 8-byte header length, then '{'
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < file.stat().st_size


def _read_safetensors(file: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(file), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{file} is not a readable safetensors file ({exc}); re-download it.") from exc


def _read_pickle(file: Path) -> object:
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" in str(exc):  # the weights-only unpickler met a class or function: code, not weights
            raise CheckpointError(
                f"Refused to load {file}: it contains Python objects or code, not just tensors. Only plain "
                f"weight files are loaded (torch.load weights_only=True); convert it to .safetensors from a "
                f"source you trust."
            ) from exc
        raise CheckpointError(
            f"{file} is not a RIFE checkpoint: neither a PyTorch nor a safetensors file (unreadable pickle data). "
            "Re-download it."
        ) from exc
    except Exception as exc:  # weights_only=True runs no code: any other failure means a damaged or foreign file
        raise CheckpointError(
            f"{file} is not a readable PyTorch checkpoint: the file is truncated, corrupted or of another kind "
            f"({type(exc).__name__}: {exc}). Re-download it."
        ) from exc


def normalize_state_dict(raw: object, *, origin: str | Path = "checkpoint") -> dict[str, Tensor]:
    """Unwrap container dicts, strip ``module.``/``flownet.`` prefixes and drop training-only tensors."""
    state = raw
    while isinstance(state, Mapping) and not any(isinstance(v, Tensor) for v in state.values()):
        inner = next((state[k] for k in WRAPPER_KEYS if isinstance(state.get(k), Mapping)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, Mapping) or not any(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{origin} holds no tensors ({type(raw).__name__}): it is not a model checkpoint.")
    result: dict[str, Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, Tensor) or not isinstance(key, str):
            continue
        name = key
        stripped = True
        while stripped:
            stripped = False
            for prefix in STRIPPED_PREFIXES:
                if name.startswith(prefix):
                    name, stripped = name[len(prefix) :], True
        if name.startswith(TRAINING_ONLY_PREFIXES):
            continue
        result[name] = value
    return result


@functools.cache
def expected_layout(arch: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the state dict that the network for ``arch`` has (built on the meta device)."""
    with torch.device("meta"):
        net = IFNet(ARCHS[arch])
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def detect_arch(state: Mapping[str, Tensor], *, origin: str | Path = "checkpoint") -> ArchSpec:
    """The :class:`ArchSpec` whose layout ``state`` matches exactly, else a :class:`CheckpointError` that names
    the closest layout and what differs."""
    layout = {k: tuple(v.shape) for k, v in state.items()}
    best, best_score = None, -1.0
    for name in ARCHS:
        expected = expected_layout(name)
        if layout == expected:
            return ARCHS[name]
        same = sum(1 for k, shape in layout.items() if expected.get(k) == shape)
        score = same / len(set(layout) | set(expected))
        if score > best_score:
            best, best_score = name, score
    assert best is not None
    expected = expected_layout(best)
    missing = [k for k in expected if k not in layout]
    unexpected = [k for k in layout if k not in expected]
    wrong = [
        f"{k} {list(layout[k])} (expected {list(s)})" for k, s in expected.items() if k in layout and layout[k] != s
    ]
    if best_score < 0.5:
        raise CheckpointError(
            f"{origin} is not a RIFE 4.x checkpoint: its {len(layout)} tensors match no known layout (closest: "
            f"RIFE {'/'.join(ARCHS[best].versions)}, {best_score:.0%} of keys). "
            f"Examples of its keys: {_preview(list(layout))}. {OFFICIAL_WEIGHTS_HINT}"
        )
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing tensors ({_preview(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected tensors ({_preview(unexpected)})")
    if wrong:
        parts.append(f"{len(wrong)} tensors of the wrong shape ({_preview(wrong)})")
    raise CheckpointError(
        f"{origin} looks like RIFE {'/'.join(ARCHS[best].versions)} (layout {best}) but does not match it: "
        f"{'; '.join(parts)}. The file is damaged or a variant this version does not support."
    )


def _preview(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... {len(items) - limit} more" if len(items) > limit else "")


def build_net(state: Mapping[str, Tensor], *, origin: str | Path = "checkpoint") -> IFNet:
    """An :class:`IFNet` with ``state`` loaded strictly, after detection and a finiteness check (fp32)."""
    spec = detect_arch(state, origin=origin)
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{origin} contains NaN or infinite weights in {_preview(bad)}; the file is corrupted.")
    net = IFNet(spec)
    net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return net.eval().requires_grad_(False)
