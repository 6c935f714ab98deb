"""Regenerate ``4.0-retry-fires.safetensors``: the official 4.0 ensemble forward when the retry rule fires.

The shared goldens' ``net-ensemble/4.0-retry`` case does not fire the rule under ensemble (the averaged block 0
keeps block 1's first flow delta under 32 px in y), so the official quirk "block 0 is rerun without its reversed
half" needs weights that fire it in both modes: ``synthetic_state_dict("4.0")`` with ``block1.lastconv.weight``
times 2.5. ``ens_*``: the golden 64x64 pair. ``wide_ens_*``: a 64x96 pair (the golden frames plus their
first 32 columns mirrored, :func:`wide`) on which the retry needs sizes divisible by 64, so the frames are
padded further (replicate, the project's padding) to 64x128 and the result cropped back, as Practical-RIFE's
padding to 128 would do. The reference is HolyWu/vs-rife @ 2a7f2c8d1f614642a996a52d90d74aa25cf1ba22
(``vsrife/IFNet_HDv3_v4_0.py`` + ``vsrife/warplayer.py``), run from a checkout given on the command line (its
``vsrife/__init__.py`` needs VapourSynth: an empty one will do); nothing of it is part of this project.

    python tests/data/ensemble/make_reference.py --vsrife /path/to/vs-rife --golden ../shared/golden
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

WEIGHT_FACTOR = 2.5
TIMESTEPS = (0.25, 0.5)
COMMIT = "2a7f2c8d1f614642a996a52d90d74aa25cf1ba22"


def wide(image: torch.Tensor) -> torch.Tensor:
    """[1,3,64,64] -> [1,3,64,96]: the frame and its first 32 columns mirrored beside it."""
    return torch.cat((image, image[..., :32].flip(-1)), -1)


def official(net, img0: torch.Tensor, img1: torch.Tensor, t: float) -> torch.Tensor:
    """The official forward on frames of a valid size, with the official warp grid."""
    height, width = img0.shape[-2:]
    flow_div = torch.tensor([(width - 1.0) / 2.0, (height - 1.0) / 2.0])
    xs = torch.linspace(-1.0, 1.0, width).view(1, 1, 1, width).expand(1, 1, height, width)
    ys = torch.linspace(-1.0, 1.0, height).view(1, 1, height, 1).expand(1, 1, height, width)
    plane = torch.full([1, 1, height, width], t)
    return net(img0, img1, plane, flow_div, torch.cat([xs, ys], 1)).contiguous()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vsrife", type=Path, required=True, help="checkout of HolyWu/vs-rife at " + COMMIT)
    parser.add_argument("--golden", type=Path, required=True, help="the shared golden folder")
    args = parser.parse_args()
    torch.set_num_threads(2)
    sys.path[:0] = [str(args.golden), str(args.vsrife)]
    reference = importlib.import_module("vsrife.IFNet_HDv3_v4_0")
    synthetic = importlib.import_module("synthetic_weights")

    state = {k: torch.from_numpy(v) for k, v in synthetic.synthetic_state_dict("4.0", seed=0).items()}
    state["block1.lastconv.weight"] = state["block1.lastconv.weight"] * WEIGHT_FACTOR
    net = reference.IFNet(1.0, ensemble=True)
    net.load_state_dict(state)
    net.eval()
    gold = load_file(str(args.golden / "net-ensemble" / "4.0-retry.safetensors"))
    img0, img1 = gold["img0"], gold["img1"]
    padded0, padded1 = (F.pad(wide(x), (0, 32, 0, 0), mode="replicate") for x in (img0, img1))
    outputs = {}
    with torch.inference_mode():
        for t in TIMESTEPS:
            outputs[f"ens_t{t}_s1.0"] = official(net, img0, img1, t)
            outputs[f"wide_ens_t{t}_s1.0"] = official(net, padded0, padded1, t)[..., :96].contiguous()
    metadata = {
        "reference": json.dumps({"repo": "HolyWu/vs-rife", "commit": COMMIT, "settings": "IFNet(1.0, ensemble=True)"}),
        "weights": json.dumps(f'synthetic_state_dict("4.0", 0); block1.lastconv.weight *= {WEIGHT_FACTOR}'),
        "inputs": json.dumps("img0/img1 of golden net-ensemble/4.0-retry.safetensors"),
    }
    save_file(outputs, str(Path(__file__).with_name("4.0-retry-fires.safetensors")), metadata=metadata)


if __name__ == "__main__":
    main()
