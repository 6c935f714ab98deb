"""Runs inside the real ComfyUI's Python (``$COMFY_ROOT/venv``), without a server: loads the pack through
ComfyUI's ``nodes.load_custom_node`` and calls RIFE Interpolate Video on a VIDEO held in memory
(``VideoFromFile(BytesIO)``, what ComfyUI's API nodes return), which has no file for the video module to read.

    python video_node_probe.py <pack dir> <base dir> <checkpoint> <clip>     (cwd: the ComfyUI source folder)

Prints one JSON object: the output file, its frame count and rate, and the files left in the temp folder.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path

PACK, BASE, CHECKPOINT, CLIP = sys.argv[1:5]
sys.argv = ["main.py", "--cpu", "--base-directory", BASE]
sys.path.insert(0, ".")

import comfy.options  # noqa: E402

comfy.options.enable_args_parsing()

import av  # noqa: E402
import folder_paths  # noqa: E402
from comfy_api.latest import InputImpl  # noqa: E402

import nodes  # noqa: E402

assert asyncio.run(nodes.load_custom_node(PACK)), "the pack did not load"
[handle, _version] = nodes.NODE_CLASS_MAPPINGS["LoadRIFEModel"].execute(ckpt_name=CHECKPOINT).result
video = InputImpl.VideoFromFile(io.BytesIO(Path(CLIP).read_bytes()))
node = nodes.NODE_CLASS_MAPPINGS["RIFEInterpolateVideo"]
[output, info] = node.execute(rife_model=handle, video=video, multiplier=2, scale=0.0).result
path = output.get_stream_source()
with av.open(path) as container:
    stream = container.streams.video[0]
    frames = sum(1 for _ in container.decode(stream))
    rate = str(stream.average_rate)
temp = Path(folder_paths.get_temp_directory())
print(
    json.dumps(
        {
            "output": path,
            "frames": frames,
            "rate": rate,
            "info": info,
            "temp_files": sorted(str(p.relative_to(temp)) for p in temp.rglob("*") if p.is_file()),
        }
    )
)
