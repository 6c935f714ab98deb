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
WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
MAX_WRAPPER_DEPTH = 8  # {"state_dict": {"model": {...}}}: real checkpoints use one or two
MAX_ENTRIES = 100_000  # a RIFE state dict has a few hundred tensors
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
    """Inference tensors of a checkpoint file or directory, keys normalised to the official naming.

    The container is recognised from the file's first bytes, not its suffix: a pickle renamed to
    ``.safetensors`` (or the reverse) still loads, and a file that is neither is named for what it is."""
    file = resolve_checkpoint(path)
    if file.stat().st_size == 0:
        raise CheckpointError(f"{file} is empty (0 bytes): the download or copy did not finish; re-download it.")
    kind = sniff_format(file)
    if kind == "safetensors" or (kind == "unknown" and file.suffix.lower() == ".safetensors"):
        raw = _read_safetensors(file)
    else:
        raw = _read_pickle(file, kind)
    return to_official_layout(normalize_state_dict(raw, origin=file))


FORMAT_NAMES = {
    "safetensors": "a safetensors file",
    "zip": "a PyTorch checkpoint (zip)",
    "pickle": "a legacy PyTorch pickle",
    "html": "a web page (HTML), which a failed download saves instead of the file; download it again",
    "gzip": "a gzip archive: unpack it first",
    "unknown": "of unknown format",
}


def sniff_format(file: Path) -> str:
    """What the file holds, from its first bytes: a key of :data:`FORMAT_NAMES`."""
    with open(file, "rb") as handle:
        head = handle.read(16)
    size = file.stat().st_size
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= size - 8:
        return "safetensors"  # an 8-byte little-endian header length, then the JSON header
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"\x80"):
        return "pickle"
    if head.lstrip()[:1] == b"<":
        return "html"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    return "unknown"


def _suffix_note(file: Path, kind: str) -> str:
    """`` (the file is X despite its .Y suffix)`` when the suffix promises another container."""
    claims_safetensors = file.suffix.lower() == ".safetensors"
    if kind == "unknown" or claims_safetensors == (kind == "safetensors"):
        return ""
    return f" (the file is {FORMAT_NAMES[kind]} despite its {file.suffix} suffix)"


def _read_safetensors(file: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(file), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{file} is not a readable safetensors file ({exc}); re-download it.") from exc


def _read_pickle(file: Path, kind: str = "unknown") -> object:
    if kind in ("html", "gzip"):
        raise CheckpointError(f"{file} is not a RIFE checkpoint: it is {FORMAT_NAMES[kind]}.")
    note = _suffix_note(file, kind)
    try:
        with open(file, "rb") as handle:  # a file object: torch.load reads the content, whatever the suffix says
            return torch.load(handle, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" in str(exc):  # the weights-only unpickler met a class or function: code, not weights
            raise CheckpointError(
                f"Refused to load {file}: it contains Python objects or code, not just tensors. Only plain "
                f"weight files are loaded (torch.load weights_only=True); convert it to .safetensors from a "
                f"source you trust."
            ) from exc
        raise CheckpointError(
            f"{file} is not a RIFE checkpoint: neither a PyTorch nor a safetensors file (unreadable pickle data)"
            f"{note}. Re-download it."
        ) from exc
    except Exception as exc:  # weights_only=True runs no code: any other failure means a damaged or foreign file
        raise CheckpointError(
            f"{file} is not a readable PyTorch checkpoint{note}: the file is truncated, corrupted or of another "
            f"kind ({type(exc).__name__}: {_clip(str(exc))}). Re-download it."
        ) from exc


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def normalize_state_dict(raw: object, *, origin: str | Path = "checkpoint") -> dict[str, Tensor]:
    """Unwrap container dicts, strip ``module.``/``flownet.`` prefixes and drop training-only tensors.

    The structure comes from an untrusted file, so the walk is bounded: at most :data:`MAX_WRAPPER_DEPTH`
    wrappers, each visited once (a dict that contains itself ends the walk), at most :data:`MAX_ENTRIES` entries.
    Only real floating-point dense tensors are accepted (:func:`check_tensor_types`)."""
    state = _unwrap(raw, origin)
    result: dict[str, Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, Tensor) or not isinstance(key, str):
            continue
        name = key
        for _ in range(len(key)):  # each pass removes one prefix, so the loop ends
            prefix = next((p for p in STRIPPED_PREFIXES if name.startswith(p)), None)
            if prefix is None:
                break
            name = name[len(prefix) :]
        if name.startswith(TRAINING_ONLY_PREFIXES):
            continue
        result[name] = value
    check_tensor_types(result, origin=origin)
    return result


def _unwrap(raw: object, origin: str | Path) -> Mapping:
    """The mapping that holds the tensors: ``raw`` or a wrapper dict inside it (``{"state_dict": {...}}``)."""
    state, seen = raw, set()
    for _ in range(MAX_WRAPPER_DEPTH + 1):
        if not isinstance(state, Mapping):
            break
        if len(state) > MAX_ENTRIES:
            raise CheckpointError(
                f"{origin} holds a dict of {len(state)} entries (at most {MAX_ENTRIES} are read): it is not a "
                "RIFE checkpoint."
            )
        if _holds_tensors(state):
            return state
        seen.add(id(state))
        inner = next((state[k] for k in WRAPPER_KEYS if isinstance(state.get(k), Mapping)), None)
        if inner is None:
            break
        if id(inner) in seen:
            raise CheckpointError(
                f"{origin} holds no tensors: its dicts refer back to themselves (a cyclic structure, as only a "
                "damaged or hostile file has). It is not a model checkpoint."
            )
        state = inner
    else:
        raise CheckpointError(
            f"{origin} nests its dicts deeper than {MAX_WRAPPER_DEPTH} levels without reaching any tensor: "
            "it is not a model checkpoint."
        )
    raise CheckpointError(f"{origin} holds no tensors ({type(raw).__name__}): it is not a model checkpoint.")


def _holds_tensors(state: Mapping) -> bool:
    return any(isinstance(v, Tensor) for v in state.values())


def check_tensor_types(state: Mapping[str, Tensor], *, origin: str | Path = "checkpoint") -> None:
    """Refuse every tensor that is not a dense, strided, real floating-point tensor with data.

    Integer, bool, complex, float8, quantized, sparse and meta tensors would load as the right shapes and give
    silent garbage (or fail deep inside torch); the message names the file and the offending tensors."""
    bad: dict[str, list[str]] = {}
    for key, value in state.items():
        problem = _tensor_problem(value)
        if problem is not None:
            bad.setdefault(problem, []).append(key)
    if bad:
        problems = "; ".join(f"{kind}: {_preview(keys)}" for kind, keys in bad.items())
        raise CheckpointError(
            f"{origin} is not a usable RIFE checkpoint: RIFE weights are floating-point tensors "
            f"({', '.join(str(d).removeprefix('torch.') for d in WEIGHT_DTYPES)}), but it holds {problems}. "
            f"The file is damaged or was converted for another purpose; use an original checkpoint."
        )


def _tensor_problem(value: Tensor) -> str | None:
    if value.is_quantized:
        return f"quantized {value.dtype} tensors"
    if value.layout != torch.strided:
        return f"sparse ({value.layout}) tensors"
    if value.is_meta:
        return "meta tensors without data"
    if value.dtype not in WEIGHT_DTYPES:
        return f"{str(value.dtype).removeprefix('torch.')} tensors"
    return None


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
    for name in _likely_first(layout):  # an exact match usually comes first: fewer layouts are built
        if layout == expected_layout(name):
            return ARCHS[name]
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


def _likely_first(layout: Mapping[str, tuple[int, ...]]) -> list[str]:
    """Layout names, those with as many blocks as ``layout`` has (``blockN.`` keys) first."""
    blocks = {key.split(".", 1)[0] for key in layout if key.startswith("block")}
    return sorted(ARCHS, key=lambda name: ARCHS[name].num_blocks != len(blocks))


def _preview(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... {len(items) - limit} more" if len(items) > limit else "")


def build_net(state: Mapping[str, Tensor], *, origin: str | Path = "checkpoint") -> IFNet:
    """An :class:`IFNet` with ``state`` loaded strictly, after detection and a finiteness check (fp32)."""
    check_tensor_types(state, origin=origin)
    spec = detect_arch(state, origin=origin)
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{origin} contains NaN or infinite weights in {_preview(bad)}; the file is corrupted.")
    with torch.device("meta"):  # no random init of weights that are replaced right away
        net = IFNet(spec).requires_grad_(False)
    # the network gets its own fp32 copies (assigned, not copied again), whatever the caller does with ``state``
    weights = {k: v.to(torch.float32, copy=True) for k, v in state.items()}
    net.load_state_dict(weights, strict=True, assign=True)
    return net.eval()
