#!/usr/bin/env python3
"""Reference for ressa's ImageProcessor (src/ressa/data/image_processor.h): writes the fixtures of
tests/unit/test_data_image_processor.cpp under tests/fixtures/image_processor/.

It restates Hugging Face transformers' CLIPImageProcessor and SiglipImageProcessor (the PIL-based
"slow" processors) for one image with PIL and numpy only (transformers is not needed):
  decode      PIL Image.open(...).convert("RGB")   (JPEG through libjpeg-turbo, as ressa)
  resize      PIL Image.resize((w, h), resample); CLIP's shortest-edge size from
              get_resize_output_image_size(default_to_square=False)
  center crop transformers.image_transforms.center_crop (floor-centred window, ceil-centred zero pad)
  rescale     image.astype(float64) * rescale_factor -> float32
  normalize   (image - float32(mean)) / float32(std) in float32, then (C, H, W)

Needs Debian's python3-pil and python3-numpy (run it with /usr/bin/python3).

Usage:
  image_processor_reference.py inputs  [--photos DIR]   # make the input images (once)
  image_processor_reference.py fixtures                 # reference outputs for the inputs

`inputs` cuts the input photos out of scikit-image's sample photographs, which Debian's
python3-skimage ships in /usr/lib/python3/dist-packages/skimage/data (public domain / CC0: see
the docstrings of skimage/data/_fetchers.py): odd sizes, each a crop with the target's aspect
ratio, downscaled with PIL's LANCZOS, saved as PNG (RGB, grey, RGBA) or JPEG (quality 90).
"""
import argparse
import json
import math
import os
import sys
import zlib

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "image_processor")
PHOTOS = "/usr/lib/python3/dist-packages/skimage/data"

# (name, source photo, crop origin as a fraction of the free room (fx, fy), width, height, format)
# format: jpg | png | png-grey | png-rgba | jpg-grey. Heights 1 and 3 are avoided: transformers
# reads such an image as channels-first.
INPUTS = [
    ("a", "astronaut.png", (0.5, 0.3), 333, 500, "jpg"),
    ("b", "retina.jpg", (0.5, 0.5), 1001, 77, "png"),
    ("c", "coffee.png", (0.3, 0.5), 17, 640, "png"),
    ("d", "hubble_deep_field.jpg", (0.2, 0.6), 640, 480, "jpg"),
    ("e", "chelsea.png", (0.5, 0.5), 451, 300, "jpg"),
    ("f", "rocket.jpg", (0.5, 0.5), 77, 1001, "jpg"),
    ("g", "coffee.png", (0.6, 0.4), 257, 255, "jpg"),
    ("h", "motorcycle_left.png", (0.4, 0.5), 401, 299, "jpg"),
    ("i", "astronaut.png", (0.8, 0.9), 129, 130, "png"),
    ("j", "rocket.jpg", (0.5, 0.2), 299, 401, "jpg"),
    ("k", "chelsea.png", (0.1, 0.5), 211, 149, "png"),
    ("l", "coffee.png", (0.9, 0.1), 149, 211, "png"),
    ("m", "motorcycle_left.png", (0.5, 0.9), 301, 64, "png"),
    ("n", "retina.jpg", (0.3, 0.7), 64, 301, "png"),
    ("o", "hubble_deep_field.jpg", (0.7, 0.2), 123, 457, "png"),
    ("p", "chelsea.png", (0.5, 0.4), 45, 45, "png"),
    ("q", "astronaut.png", (0.2, 0.2), 88, 89, "png-rgba"),
    ("r", "camera.png", (0.5, 0.5), 97, 113, "png-grey"),
    ("s", "camera.png", (0.3, 0.6), 250, 179, "jpg-grey"),
    ("t", "coffee.png", (0.5, 0.5), 31, 29, "png"),
    ("u", "motorcycle_left.png", (0.9, 0.3), 160, 120, "png"),
    ("v", "astronaut.png", (0.5, 0.5), 223, 224, "jpg"),
    ("w", "rocket.jpg", (0.4, 0.8), 96, 97, "jpg"),
    ("x", "retina.jpg", (0.1, 0.1), 500, 333, "jpg"),
]

# The processor configs (preprocessor_config.json files written beside the fixtures) and the
# inputs each runs on. Fields left out take the class's defaults.
CONFIGS = {
    # bicubic, CLIP mean/std, shortest-edge resize, a non-square crop wider than some resized
    # images (zero padding)
    "clip_small": ({"image_processor_type": "CLIPImageProcessor", "processor_class": "LlavaProcessor",
                    "size": {"shortest_edge": 88}, "crop_size": {"height": 80, "width": 96}}, None),
    # bilinear, mean/std 0.5, a non-square fixed size
    "siglip_small": ({"image_processor_type": "SiglipImageProcessor", "size": {"height": 72, "width": 104}}, None),
    # bicubic SigLIP as llava-interleave writes it, other mean/std, scale given explicitly
    "siglip_bicubic": ({"image_processor_type": "SiglipImageProcessor", "do_convert_rgb": None,
                        "resample": 3, "size": {"height": 64, "width": 64}, "rescale_factor": 0.00392156862745098,
                        "image_mean": [0.4, 0.5, 0.6], "image_std": [0.2, 0.25, 0.3]}, None),
    # CLIP with a bilinear resize to a fixed size, then a crop, and no rescale
    "clip_fixed_bilinear": ({"image_processor_type": "CLIPImageProcessor", "resample": 2,
                             "size": {"height": 70, "width": 50}, "crop_size": 60, "do_rescale": False}, None),
    # The classes' defaults (224) on a few inputs
    "clip_default": ({"image_processor_type": "CLIPImageProcessor"}, ["a", "c", "t"]),
    "siglip_default": ({"image_processor_type": "SiglipImageProcessor"}, ["b", "g"]),
    # One axis kept: PIL filters only the axis that changes (w is 96x97)
    "siglip_keep_height": ({"image_processor_type": "SiglipImageProcessor", "size": {"height": 97, "width": 64}}, ["w"]),
    "siglip_keep_width": ({"image_processor_type": "SiglipImageProcessor", "resample": 3,
                           "size": {"height": 50, "width": 96}}, ["w"]),
}

OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def resolved(cfg):
    """The settings CLIPImageProcessor / SiglipImageProcessor would use for `cfg`."""
    clip = cfg["image_processor_type"] == "CLIPImageProcessor"
    r = {
        "clip": clip,
        "do_resize": cfg.get("do_resize", True),
        "size": cfg.get("size") or ({"shortest_edge": 224} if clip else {"height": 224, "width": 224}),
        "resample": cfg.get("resample", 3 if clip else 2),
        "do_center_crop": clip and cfg.get("do_center_crop", True),
        "crop_size": cfg.get("crop_size") or {"height": 224, "width": 224},
        "do_rescale": cfg.get("do_rescale", True),
        "rescale_factor": cfg.get("rescale_factor", 1 / 255),
        "do_normalize": cfg.get("do_normalize", True),
        "image_mean": cfg.get("image_mean") or (OPENAI_CLIP_MEAN if clip else [0.5, 0.5, 0.5]),
        "image_std": cfg.get("image_std") or (OPENAI_CLIP_STD if clip else [0.5, 0.5, 0.5]),
    }
    if isinstance(r["crop_size"], int):  # get_size_dict(default_to_square=True)
        r["crop_size"] = {"height": r["crop_size"], "width": r["crop_size"]}
    if isinstance(r["size"], int):  # get_size_dict(default_to_square=False)
        r["size"] = {"shortest_edge": r["size"]}
    return r


def resize_output_size(height, width, size):
    """(h, w) as transformers' get_resize_output_image_size(default_to_square=False) gives it."""
    if "shortest_edge" not in size:
        return size["height"], size["width"]
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size["shortest_edge"], int(size["shortest_edge"] * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def center_crop(image, crop_height, crop_width):
    """transformers.image_transforms.center_crop for an (H, W, C) array."""
    orig_height, orig_width = image.shape[:2]
    top = (orig_height - crop_height) // 2
    bottom = top + crop_height
    left = (orig_width - crop_width) // 2
    right = left + crop_width
    if top >= 0 and bottom <= orig_height and left >= 0 and right <= orig_width:
        return image[top:bottom, left:right]
    new_height = max(crop_height, orig_height)
    new_width = max(crop_width, orig_width)
    new_image = np.zeros((new_height, new_width) + image.shape[2:], dtype=image.dtype)
    top_pad = math.ceil((new_height - orig_height) / 2)
    left_pad = math.ceil((new_width - orig_width) / 2)
    new_image[top_pad:top_pad + orig_height, left_pad:left_pad + orig_width] = image
    top, bottom, left, right = top + top_pad, bottom + top_pad, left + left_pad, right + left_pad
    return new_image[max(0, top):min(new_height, bottom), max(0, left):min(new_width, right)]


def process(rgb, r):
    """rgb: (H, W, 3) uint8. Returns the uint8 image after resize and crop, and the (3, H, W) model input."""
    image = rgb
    if r["do_resize"]:
        h, w = resize_output_size(image.shape[0], image.shape[1], r["size"])
        image = np.array(Image.fromarray(image).resize((w, h), resample=r["resample"]))
    if r["do_center_crop"]:
        image = center_crop(image, r["crop_size"]["height"], r["crop_size"]["width"])
    resized = image
    x = image
    if r["do_rescale"]:
        x = (x.astype(np.float64) * r["rescale_factor"]).astype(np.float32)
    if r["do_normalize"]:
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32)
        x = (x - np.array(r["image_mean"], dtype=x.dtype)) / np.array(r["image_std"], dtype=x.dtype)
    return resized, x.astype(np.float32).transpose(2, 0, 1)


def make_inputs(photos):
    os.makedirs(os.path.join(ROOT, "inputs"), exist_ok=True)
    for name, src, (fx, fy), w, h, fmt in INPUTS:
        im = Image.open(os.path.join(photos, src)).convert("RGB")
        sw, sh = im.size
        scale = min(sw / w, sh / h)  # the largest crop with the target's aspect ratio
        cw, ch = max(w, int(w * scale * 0.9)), max(h, int(h * scale * 0.9))
        cw, ch = min(cw, sw), min(ch, sh)
        x0, y0 = int((sw - cw) * fx), int((sh - ch) * fy)
        im = im.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.LANCZOS)
        base = os.path.join(ROOT, "inputs", f"{name}_{w}x{h}")
        if fmt == "jpg":
            im.save(base + ".jpg", quality=90)
        elif fmt == "jpg-grey":
            im.convert("L").save(base + ".jpg", quality=90)
        elif fmt == "png-grey":
            im.convert("L").save(base + ".png", optimize=True)
        elif fmt == "png-rgba":
            a = np.array(im.convert("RGBA"))
            a[..., 3] = np.linspace(40, 255, w, dtype=np.uint8)[None, :]  # varying alpha, dropped on decode
            Image.fromarray(a, "RGBA").save(base + ".png", optimize=True)
        else:
            im.save(base + ".png", optimize=True)


def sample_positions(c, h, w, n=12):
    rng = np.random.default_rng(h * 1000 + w)
    pos = [(0, 0, 0), (c - 1, h - 1, w - 1), (1, h // 2, w // 2)]
    while len(pos) < n:
        pos.append((int(rng.integers(c)), int(rng.integers(h)), int(rng.integers(w))))
    return pos


def make_fixtures():
    inputs = sorted(os.listdir(os.path.join(ROOT, "inputs")))
    os.makedirs(os.path.join(ROOT, "outputs"), exist_ok=True)
    manifest = {"configs": {}, "cases": []}
    for cname, (cfg, _) in CONFIGS.items():
        with open(os.path.join(ROOT, f"{cname}.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        r = resolved(cfg)
        # Normalized value of every uint8 level per channel: the whole rescale+normalize map.
        levels = np.tile(np.arange(256, dtype=np.uint8)[None, :, None], (1, 1, 3))
        table = process(levels, dict(r, do_resize=False, do_center_crop=False))[1]
        manifest["configs"][cname] = {"file": f"{cname}.json", "levels": [[float(v) for v in table[c, 0]] for c in range(3)]}
    for fname in inputs:
        name = fname.split("_")[0]
        pil = Image.open(os.path.join(ROOT, "inputs", fname))
        rgb = np.array(pil.convert("RGB"))
        case = {"input": f"inputs/{fname}", "mode": pil.mode, "width": rgb.shape[1], "height": rgb.shape[0],
                "decoded_crc32": zlib.crc32(rgb.tobytes()), "outputs": {}}
        for cname, (cfg, only) in CONFIGS.items():
            if only is not None and name not in only:
                continue
            resized, pixels = process(rgb, resolved(cfg))
            out = f"outputs/{name}_{cname}.png"
            Image.fromarray(resized).save(os.path.join(ROOT, out), optimize=True)
            c, h, w = pixels.shape
            case["outputs"][cname] = {
                "file": out, "height": h, "width": w,
                "samples": [[ci, y, x, float(pixels[ci, y, x])] for ci, y, x in sample_positions(c, h, w)]}
        manifest["cases"].append(case)
    with open(os.path.join(ROOT, "manifest.json"), "w") as f:  # one config or case a line
        f.write('{"configs": {\n')
        f.write(",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in manifest["configs"].items()))
        f.write('},\n"cases": [\n')
        f.write(",\n".join(json.dumps(c) for c in manifest["cases"]))
        f.write("]}\n")
    print(f"{len(manifest['cases'])} inputs, {sum(len(c['outputs']) for c in manifest['cases'])} outputs "
          f"-> {os.path.normpath(ROOT)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["inputs", "fixtures"])
    ap.add_argument("--photos", default=PHOTOS, help="scikit-image's data directory")
    a = ap.parse_args()
    if a.what == "inputs":
        if not os.path.isdir(a.photos):
            sys.exit(f"error: {a.photos} not found (apt-get install python3-skimage, or pass --photos)")
        make_inputs(a.photos)
    else:
        make_fixtures()


if __name__ == "__main__":
    main()
