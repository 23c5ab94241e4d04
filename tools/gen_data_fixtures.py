#!/usr/bin/env python3
"""Generate the stage-1 data-layer fixtures for moca-ts (test/data/*.test.ts) into test/fixtures/data/.

Needs Pillow and pyarrow. The system Python has Pillow but no pyarrow; a throw-away virtual environment works:

    /usr/bin/python3 -m venv --system-site-packages /tmp/pqvenv && /tmp/pqvenv/bin/pip install pyarrow
    /tmp/pqvenv/bin/python tools/gen_data_fixtures.py

The Parquet files follow the layout Hugging Face `datasets` writes (pyarrow, snappy by default): a `text` string
column and an `images` column that is either a list of the `Image` feature's struct `{bytes: binary, path: string}`
or a plain list of binary (what MoCa's stage-1 sets hold). Everything is deterministic and tiny (< 50 kB).
Written files:
  img/*.png, img/*.jpg          small images referenced by the JSONL rows (and one Parquet row by path)
  blue_20x40_to_28x40.rgb       PIL's `Image.resize((28, 40))` (default BICUBIC) of img/blue_20x40.png, raw RGB —
                                what MoCa's collator does to an image with a side < 28 px
  docs.jsonl                    good JSON Lines rows (text-only, one image, two images incl. a data: URI)
  bad.jsonl                     good rows mixed with every kind of bad row
  interleaved.parquet           snappy, row groups of 2, images = list<struct<bytes, path>> (HF Image feature)
  binary.parquet                gzip, images = list<binary>, with an int64 `id` column
  shards/train-0000{0,1}-of-00002.parquet   a directory source of two text-only shards
  notext.parquet                a Parquet file without a text column (refused)
  manifest.json                 image sizes and row facts the tests check against
"""

import base64
import io
import json
import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "data")
IMG = "<|vision_start|><|image_pad|><|vision_end|>"

HF_FEATURES_IMAGE_STRUCT = {
    "info": {
        "features": {
            "text": {"dtype": "string", "_type": "Value"},
            "images": {"feature": {"_type": "Image"}, "_type": "Sequence"},
        }
    }
}


def gradient(w, h, seed):
    im = Image.new("RGB", (w, h))
    px = im.load()
    for y in range(h):
        for x in range(w):
            px[x, y] = ((x * 7 + seed * 31) % 256, (y * 11 + seed * 17) % 256, ((x + y) * 5 + seed) % 256)
    return im


def png_bytes(im):
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def jpg_bytes(im):
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(row if isinstance(row, str) else json.dumps(row, ensure_ascii=False))
            f.write("\n")


def hf_metadata(schema, features):
    return schema.with_metadata({"huggingface": json.dumps(features)})


def main():
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(os.path.join(OUT, "img"))
    os.makedirs(os.path.join(OUT, "shards"))

    images = {
        "red_40x30.png": gradient(40, 30, 1),
        "blue_20x40.png": gradient(20, 40, 2),
        "green_60x57.jpg": gradient(60, 57, 3),
    }
    encoded = {}
    for name, im in images.items():
        data = png_bytes(im) if name.endswith(".png") else jpg_bytes(im)
        encoded[name] = data
        with open(os.path.join(OUT, "img", name), "wb") as f:
            f.write(data)

    # MoCa's collator: image.resize((max(28, w), max(28, h))) with PIL's default filter (BICUBIC for RGB).
    small = Image.open(io.BytesIO(encoded["blue_20x40.png"]))
    up = small.resize((max(28, small.size[0]), max(28, small.size[1])))
    assert up.size == (28, 40) and up.mode == "RGB"
    with open(os.path.join(OUT, "blue_20x40_to_28x40.rgb"), "wb") as f:
        f.write(up.tobytes())

    tiny = gradient(9, 5, 4)
    tiny_uri = "data:image/png;base64," + base64.b64encode(png_bytes(tiny)).decode("ascii")
    corrupt_uri = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nthis is not a png").decode("ascii")

    write_jsonl(
        os.path.join(OUT, "docs.jsonl"),
        [
            {"id": "j0", "text": f"A red gradient {IMG} under a caption.", "images": ["img/red_40x30.png"]},
            {"text": "A text-only document without an images field."},
            {"text": f"Two images: {IMG} and then {IMG}.", "images": ["img/blue_20x40.png", tiny_uri]},
            {"id": 7, "text": "Text-only with an empty list.", "images": []},
        ],
    )

    write_jsonl(
        os.path.join(OUT, "bad.jsonl"),
        [
            {"text": "good zero"},  # row 0
            '{"text": "broken json"',  # row 1: invalid JSON
            {"text": 42},  # row 2: text not a string
            {"text": f"one placeholder {IMG}", "images": []},  # row 3: placeholder count mismatch
            {"text": f"missing file {IMG}", "images": ["img/does_not_exist.png"]},  # row 4: missing image
            "",  # a blank line: not a row
            {"text": f"corrupt bytes {IMG}", "images": [corrupt_uri]},  # row 5: corrupt image
            {"text": "images not a list", "images": "img/red_40x30.png"},  # row 6: images not an array
            ["not", "an", "object"],  # row 7: not an object
            {"text": f"good one {IMG}", "images": ["img/green_60x57.jpg"]},  # row 8
        ],
    )

    image_struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([("text", pa.string()), ("images", pa.list_(image_struct))])
    rows = [
        (f"Parquet row zero {IMG} end.", [{"bytes": encoded["red_40x30.png"], "path": "red_40x30.png"}]),
        ("Parquet text-only row.", []),
        (
            f"{IMG} two {IMG} images",
            [{"bytes": encoded["green_60x57.jpg"], "path": None}, {"bytes": encoded["blue_20x40.png"], "path": None}],
        ),
        (f"By path {IMG}.", [{"bytes": None, "path": "img/red_40x30.png"}]),
        (f"Corrupt {IMG}.", [{"bytes": b"GIF89a-garbage", "path": None}]),
    ]
    table = pa.table(
        {"text": [r[0] for r in rows], "images": [r[1] for r in rows]},
        schema=hf_metadata(schema, HF_FEATURES_IMAGE_STRUCT),
    )
    pq.write_table(table, os.path.join(OUT, "interleaved.parquet"), row_group_size=2, compression="snappy")

    bin_schema = pa.schema([("id", pa.int64()), ("text", pa.string()), ("images", pa.list_(pa.binary()))])
    table = pa.table(
        {
            "id": [100, 101, 102],
            "text": [f"Binary list {IMG}", "Binary text-only", f"{IMG}{IMG}"],
            "images": [[encoded["red_40x30.png"]], [], [encoded["blue_20x40.png"], encoded["green_60x57.jpg"]]],
        },
        schema=bin_schema,
    )
    pq.write_table(table, os.path.join(OUT, "binary.parquet"), row_group_size=2, compression="gzip")

    text_schema = pa.schema([("text", pa.string()), ("images", pa.list_(image_struct))])
    for shard, (start, n) in enumerate([(0, 5), (5, 4)]):
        table = pa.table(
            {"text": [f"shard {shard} doc {start + i}" for i in range(n)], "images": [[] for _ in range(n)]},
            schema=hf_metadata(text_schema, HF_FEATURES_IMAGE_STRUCT),
        )
        pq.write_table(
            table,
            os.path.join(OUT, "shards", f"train-{shard:05d}-of-00002.parquet"),
            row_group_size=3,
            compression="snappy",
        )

    # Not stage-1 data: no text column (the reader must say so).
    pq.write_table(pa.table({"caption": ["x"], "n": [1]}), os.path.join(OUT, "notext.parquet"))

    manifest = {
        "images": {name: list(im.size) for name, im in images.items()},
        "tiny_data_uri_size": list(tiny.size),
        "upscaled": {"input": "img/blue_20x40.png", "output": "blue_20x40_to_28x40.rgb", "size": [28, 40]},
        "pyarrow": pa.__version__,
        "pillow": Image.__version__ if hasattr(Image, "__version__") else None,
    }
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
