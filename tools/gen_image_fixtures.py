#!/usr/bin/env python3
"""Generate the reference fixtures for moca-ts's Qwen2-VL image processor (test/processing/image*.test.ts).

Run from the repository root with the system Python (Pillow 9.4, numpy, torch 1.13):

    /usr/bin/python3 tools/gen_image_fixtures.py            # writes test/fixtures/image/
    /usr/bin/python3 tools/gen_image_fixtures.py --cat-dog  # also prints summary numbers for
                                                            # /work/shared/data/images/cat-dog.jpg (not written)

transformers is not needed: its slow Qwen2VLImageProcessor (4.50) pipeline is re-implemented below step by step
with the same library calls (PIL for decoding, alpha compositing and resizing; numpy for rescale/normalize with
transformers' dtypes; torch for the patch reshape/permute). Everything is deterministic; outputs are small
(< 2 MB in total) so they can be committed.
"""

import argparse
import hashlib
import io
import json
import math
import os
import shutil
import sys

import numpy as np
import PIL
import torch
from PIL import Image, ImageDraw, ImageOps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "image")
CAT_DOG = "/work/shared/data/images/cat-dog.jpg"

OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
MOCA_MIN_PIXELS = 256 * 28 * 28
MOCA_MAX_PIXELS = 1024 * 28 * 28


# ----------------------------------------------------------------------------- transformers 4.50 re-implementation


def convert_to_rgb(image):
    """transformers.image_transforms.convert_to_rgb: alpha composited onto white (PIL branch)."""
    if image.mode == "RGB":
        return image
    image_rgba = image.convert("RGBA")
    background = Image.new("RGBA", image_rgba.size, (255, 255, 255))
    alpha_composite = Image.alpha_composite(background, image_rgba)
    return alpha_composite.convert("RGB")


def load_rgb(path, exif=True):
    """Decode as the reference does: EXIF transpose (load_image) then convert_to_rgb (do_convert_rgb)."""
    im = Image.open(path)
    if exif:
        im = ImageOps.exif_transpose(im)
    return np.asarray(convert_to_rgb(im), dtype=np.uint8)


def smart_resize(height, width, factor=28, min_pixels=56 * 56, max_pixels=14 * 14 * 4 * 1280):
    """transformers 4.50 qwen2_vl.image_processing_qwen2_vl.smart_resize."""
    if height < factor or width < factor:
        raise ValueError(f"height:{height} or width:{width} must be larger than factor:{factor}")
    elif max(height, width) / min(height, width) > 200:
        raise ValueError(
            f"absolute aspect ratio must be smaller than 200, got {max(height, width) / min(height, width)}"
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def pil_bicubic(rgb, width, height):
    """transformers.image_transforms.resize on a uint8 HWC array: PIL round trip, reducing_gap=None."""
    return np.asarray(Image.fromarray(rgb).resize((width, height), resample=Image.BICUBIC), dtype=np.uint8)


def qwen2vl_process(rgb, min_pixels, max_pixels, patch_size=14, temporal_patch_size=2, merge_size=2):
    """Qwen2VLImageProcessor._preprocess for one still image (do_resize/rescale/normalize on)."""
    height, width = rgb.shape[:2]
    rh, rw = smart_resize(height, width, patch_size * merge_size, min_pixels, max_pixels)
    image = pil_bicubic(rgb, rw, rh)
    # image_transforms.rescale: float64 multiply, then cast to float32.
    image = (image.astype(np.float64) * (1 / 255)).astype(np.float32)
    # image_transforms.normalize: float32 image, mean/std cast to the image dtype.
    mean = np.array(OPENAI_CLIP_MEAN, dtype=image.dtype)
    std = np.array(OPENAI_CLIP_STD, dtype=image.dtype)
    image = (image - mean) / std
    image = image.transpose(2, 0, 1)  # to ChannelDimension.FIRST
    patches = torch.from_numpy(np.array([image]))
    patches = patches.expand(temporal_patch_size, -1, -1, -1)
    c = patches.size(1)
    grid_t = patches.size(0) // temporal_patch_size
    grid_h, grid_w = rh // patch_size, rw // patch_size
    flat = (
        patches.reshape(
            grid_t,
            temporal_patch_size,
            c,
            grid_h // merge_size,
            merge_size,
            patch_size,
            grid_w // merge_size,
            merge_size,
            patch_size,
        )
        .permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
        .reshape(grid_t * grid_h * grid_w, c * temporal_patch_size * patch_size * patch_size)
        .numpy()
    )
    assert flat.dtype == np.float32
    return np.ascontiguousarray(flat), (grid_t, grid_h, grid_w)


# ----------------------------------------------------------------------------- synthetic inputs


def make_inputs(rng):
    """name -> (PIL image, save kwargs). Small, deterministic, covering the modes/formats decodeImage handles."""
    images = {}

    # RGB gradient with a hard-edged pattern and noise, at an awkward odd size.
    h, w = 53, 37
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack(
        [x * 255 // (w - 1), y * 255 // (h - 1), ((x * y * 7) % 256 + rng.integers(0, 40, (h, w))) % 256], axis=-1
    ).astype(np.uint8)
    images["grad_37x53.png"] = (Image.fromarray(rgb, "RGB"), {})

    # A small "scene": smooth background, shapes with sharp edges, a noise patch.
    h, w = 200, 300
    y, x = np.mgrid[0:h, 0:w]
    bg = np.stack([40 + x * 150 // w, 90 + y * 120 // h, 200 - (x + y) * 120 // (w + h)], axis=-1).astype(np.uint8)
    scene = Image.fromarray(bg, "RGB")
    d = ImageDraw.Draw(scene)
    d.ellipse((30, 20, 140, 120), fill=(250, 220, 30), outline=(10, 10, 10), width=3)
    d.rectangle((170, 60, 280, 180), fill=(200, 30, 60))
    d.line((0, 199, 299, 0), fill=(255, 255, 255), width=2)
    d.polygon([(60, 190), (120, 140), (150, 195)], fill=(20, 120, 40))
    arr = np.array(scene)
    arr[130:170, 200:240] = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    images["scene_300x200.png"] = (Image.fromarray(arr, "RGB"), {})

    # RGBA: alpha ramp, a fully transparent disc whose hidden colour must not leak, saturated colours.
    h = w = 64
    y, x = np.mgrid[0:h, 0:w]
    rgba = np.stack([(x * 4) % 256, 255 - y * 4, (x * y) % 256, np.clip(x * 4 + y, 0, 255)], axis=-1).astype(np.uint8)
    rgba[((x - 40) ** 2 + (y - 22) ** 2) < 100, 3] = 0
    rgba[((x - 40) ** 2 + (y - 22) ** 2) < 100, :3] = (0, 255, 0)
    images["rgba_64x64.png"] = (Image.fromarray(rgba, "RGBA"), {})

    # Palette GIF with a transparent index.
    pal = Image.new("P", (45, 31), 0)
    palette = [255, 0, 255] + [c for i in range(1, 256) for c in ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256)]
    pal.putpalette(palette)
    d = ImageDraw.Draw(pal)
    for i in range(12):
        d.rectangle((i * 4, (i * 3) % 20, i * 4 + 6, (i * 3) % 20 + 9), fill=1 + i * 20)
    d.ellipse((20, 5, 44, 29), fill=200)
    d.ellipse((28, 12, 36, 20), fill=0)  # transparent hole
    images["palette_45x31.gif"] = (pal, {"transparency": 0})

    # Palette PNG with per-entry alpha (tRNS with several entries).
    p2 = Image.new("P", (30, 22), 0)
    p2.putpalette([c for i in range(256) for c in (i, 255 - i, (i * 5) % 256)])
    p2.putdata([(xx * 8 + yy * 3) % 256 for yy in range(22) for xx in range(30)])
    images["palette_trns_30x22.png"] = (p2, {"transparency": bytes([(i * 17) % 256 for i in range(256)])})

    # Truecolour PNG with a tRNS colour key: PIL keeps mode "RGB", so convert_to_rgb must NOT composite it.
    h, w = 18, 26
    y, x = np.mgrid[0:h, 0:w]
    key = np.stack([x * 9, y * 13, (x + y) * 5], axis=-1).astype(np.uint8)
    key[5:12, 8:18] = (10, 20, 30)
    images["rgb_trns_26x18.png"] = (Image.fromarray(key, "RGB"), {"transparency": (10, 20, 30)})

    # Grayscale (mode L) and grayscale + alpha (mode LA).
    h, w = 29, 41
    y, x = np.mgrid[0:h, 0:w]
    gray = ((x * 6 + y * 3) % 256).astype(np.uint8) ^ rng.integers(0, 16, (h, w), dtype=np.uint8)
    images["gray_41x29.png"] = (Image.fromarray(gray, "L"), {})
    h, w = 30, 20
    y, x = np.mgrid[0:h, 0:w]
    la = np.stack([(x * 12) % 256, (y * 8 + 15) % 256], axis=-1).astype(np.uint8)
    images["la_20x30.png"] = (Image.fromarray(la, "LA"), {})

    # Lossless WebP with alpha (lossless so both decoders must agree exactly).
    h, w = 20, 33
    y, x = np.mgrid[0:h, 0:w]
    wp = np.stack([x * 7, y * 12, 255 - x * 5, np.where((x + y) % 7 == 0, 0, 128 + y * 6)], axis=-1).astype(np.uint8)
    images["lossless_33x20.webp"] = (Image.fromarray(wp, "RGBA"), {"lossless": True, "quality": 100})

    # JPEG stored 40 wide × 24 high with four flat quadrants and EXIF Orientation = 6 (display rotated 90° CW).
    q = np.zeros((24, 40, 3), np.uint8)
    q[:12, :20] = (230, 30, 30)
    q[:12, 20:] = (30, 200, 40)
    q[12:, :20] = (40, 60, 220)
    q[12:, 20:] = (240, 240, 60)
    exif = Image.Exif()
    exif[0x0112] = 6
    images["exif6_40x24.jpg"] = (Image.fromarray(q, "RGB"), {"quality": 95, "exif": exif.tobytes()})

    # Animated GIF: only the first frame is decoded (Image.open's frame 0).
    f1 = Image.new("RGB", (23, 17), (220, 40, 40))
    ImageDraw.Draw(f1).rectangle((3, 3, 12, 9), fill=(250, 250, 250))
    f2 = Image.new("RGB", (23, 17), (30, 40, 220))
    images["anim_23x17.gif"] = (f1, {"save_all": True, "append_images": [f2], "duration": 100, "loop": 0})

    # Resize edge cases: black/white checkerboard (overshoot must clip), a single pixel, a 1-pixel-wide column,
    # and pure noise (maximally sensitive to weight rounding).
    checker = ((np.indices((10, 10)).sum(axis=0) % 2) * 255).astype(np.uint8)
    images["checker_10x10.png"] = (Image.fromarray(np.stack([checker] * 3, axis=-1), "RGB"), {})
    images["pixel_1x1.png"] = (Image.fromarray(np.array([[[200, 100, 7]]], np.uint8), "RGB"), {})
    col = np.stack([np.arange(50) * 5, 250 - np.arange(50) * 5, (np.arange(50) * 37) % 256], axis=-1)
    images["column_1x50.png"] = (Image.fromarray(col.reshape(50, 1, 3).astype(np.uint8), "RGB"), {})
    images["noise_97x61.png"] = (Image.fromarray(rng.integers(0, 256, (61, 97, 3), dtype=np.uint8), "RGB"), {})
    return images


# ----------------------------------------------------------------------------- fixture writing


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cat-dog", action="store_true", help=f"print summary numbers for {CAT_DOG}")
    args = parser.parse_args()

    if PIL.__version__ != "9.4.0":
        print(f"warning: fixtures are meant to come from Pillow 9.4.0, this is {PIL.__version__}", file=sys.stderr)
    rng = np.random.default_rng(20240611)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    manifest = {
        "generator": "tools/gen_image_fixtures.py",
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
    }

    # Inputs and their decoded RGB (EXIF transpose + convert_to_rgb).
    decoded = {}
    manifest["decode"] = []
    for name, (im, kwargs) in make_inputs(rng).items():
        path = os.path.join(OUT, "inputs", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        im.save(path, **kwargs)
        opened = Image.open(path)
        for exif in (True, False) if name.startswith("exif") else (True,):
            rgb = load_rgb(path, exif=exif)
            base = os.path.splitext(name)[0] + ("" if exif else "_noexif")
            rel = f"decoded/{base}.rgb"
            write(os.path.join(OUT, rel), rgb.tobytes())
            manifest["decode"].append(
                {
                    "input": f"inputs/{name}",
                    "pilMode": opened.mode,
                    "applyExifOrientation": exif,
                    "width": rgb.shape[1],
                    "height": rgb.shape[0],
                    "expected": rel,
                    "lossy": name.endswith(".jpg"),
                }
            )
            if exif:
                decoded[base] = rgb

    # PIL bicubic resizes of lossless decoded inputs (up, down, extreme ratios, 1-pixel outputs, identity).
    resize_cases = {
        "grad_37x53": [(111, 159), (5, 7), (500, 2), (2, 400), (37, 1), (1, 53), (1, 1), (36, 54)],
        "scene_300x200": [(41, 27), (300, 1), (1, 200), (1, 1), (299, 201), (300, 200), (56, 28), (1200, 3), (28, 588)],
        "checker_10x10": [(37, 37), (3, 3), (10, 31)],
        "rgba_64x64": [(28, 28), (140, 84)],
        "gray_41x29": [(13, 97)],
        "pixel_1x1": [(5, 3), (1, 1)],
        "column_1x50": [(3, 20), (1, 7)],
        "noise_97x61": [(int(a), int(b)) for a, b in rng.integers(1, 121, (10, 2))],
    }
    manifest["resize"] = []
    for base, sizes in resize_cases.items():
        src = decoded[base]
        for w, h in sizes:
            out = pil_bicubic(src, w, h)
            if out.shape == src.shape:  # identity: PIL returns a copy; reuse the decoded file
                assert np.array_equal(out, src)
                rel = f"decoded/{base}.rgb"
            else:
                rel = f"resize/{base}_to_{w}x{h}.rgb"
                write(os.path.join(OUT, rel), out.tobytes())
            manifest["resize"].append(
                {
                    "input": f"decoded/{base}.rgb",
                    "inWidth": src.shape[1],
                    "inHeight": src.shape[0],
                    "width": w,
                    "height": h,
                    "expected": rel,
                }
            )

    # smart_resize: hand-picked cases (round-half-even, both scaling branches, errors) plus random sizes.
    limits = {
        "default": (56 * 56, 28 * 28 * 1280),
        "qwen25vl": (3136, 12845056),
        "moca": (MOCA_MIN_PIXELS, MOCA_MAX_PIXELS),
        "small": (4 * 28 * 28, 12 * 28 * 28),
    }
    picked = [
        (70, 70), (42, 98), (126, 154), (28, 28), (27, 100), (100, 27), (10, 10), (1, 500),
        (28, 5600), (28, 5601), (28, 5628), (5629, 28), (29, 5800), (599, 800), (1080, 1920),
        (4000, 3000), (12000, 9000), (28, 2000), (333, 33), (200, 300),
    ]  # fmt: skip
    rand = [(int(a), int(b)) for a, b in rng.integers(20, 4000, (60, 2))]
    manifest["smartResize"] = []
    for h, w in picked + rand:
        for key, (mn, mx) in limits.items():
            case = {"height": h, "width": w, "factor": 28, "minPixels": mn, "maxPixels": mx, "limits": key}
            try:
                case["result"] = list(smart_resize(h, w, 28, mn, mx))
            except ValueError as e:
                case["error"] = str(e)
            manifest["smartResize"].append(case)
    for h, w, factor in [(64, 48, 32), (31, 31, 32), (100, 70, 14)]:
        case = {"height": h, "width": w, "factor": factor, "minPixels": 56 * 56, "maxPixels": 28 * 28 * 1280}
        try:
            case["result"] = list(smart_resize(h, w, factor, 56 * 56, 28 * 28 * 1280))
        except ValueError as e:
            case["error"] = str(e)
        manifest["smartResize"].append(case)

    # Full processor outputs. Small limits: the whole pixel_values. MoCa limits: too big to commit (≥ 4.7 MB per
    # image), so a SHA-256 of the float32 bytes, the sum, and a handful of full rows.
    manifest["processor"] = []
    for base in ["grad_37x53", "scene_300x200", "rgba_64x64"]:
        mn, mx = limits["small"]
        pv, grid = qwen2vl_process(decoded[base], mn, mx)
        rel = f"processor/{base}_small.f32"
        write(os.path.join(OUT, rel), pv.astype("<f4").tobytes())
        manifest["processor"].append(
            {
                "input": f"decoded/{base}.rgb",
                "minPixels": mn,
                "maxPixels": mx,
                "gridThw": list(grid),
                "pixelValues": rel,
            }
        )
    for base in ["scene_300x200", "palette_45x31", "grad_37x53"]:
        pv, grid = qwen2vl_process(decoded[base], MOCA_MIN_PIXELS, MOCA_MAX_PIXELS)
        rows = sorted({0, 1, 2, 3, 5, pv.shape[0] // 3, pv.shape[0] // 2 + 1, pv.shape[0] - 1})
        rel = f"processor/{base}_moca_rows.f32"
        write(os.path.join(OUT, rel), pv[rows].astype("<f4").tobytes())
        manifest["processor"].append(
            {
                "input": f"decoded/{base}.rgb",
                "minPixels": MOCA_MIN_PIXELS,
                "maxPixels": MOCA_MAX_PIXELS,
                "gridThw": list(grid),
                "sha256": sha256(pv.astype("<f4").tobytes()),
                "sum": float(pv.astype(np.float64).sum()),
                "sampleRows": rows,
                "sampleRowValues": rel,
            }
        )

    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(OUT) for fn in fns)
    print(f"wrote {OUT}: {total} bytes")

    if args.cat_dog:
        if not os.path.exists(CAT_DOG):
            print(f"{CAT_DOG} not present; no cat-dog numbers", file=sys.stderr)
            return
        rgb = load_rgb(CAT_DOG)
        pv, grid = qwen2vl_process(rgb, MOCA_MIN_PIXELS, MOCA_MAX_PIXELS)
        print("cat-dog summary (paste into test/processing/image-catdog.test.ts):")
        print(
            json.dumps(
                {
                    "width": rgb.shape[1],
                    "height": rgb.shape[0],
                    "decodedSha256": sha256(rgb.tobytes()),
                    "channelMeans": [float(v) for v in rgb.reshape(-1, 3).astype(np.float64).mean(0)],
                    "gridThw": list(grid),
                    "pixelValuesSha256": sha256(pv.astype("<f4").tobytes()),
                    "pixelValuesSum": float(pv.astype(np.float64).sum()),
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
