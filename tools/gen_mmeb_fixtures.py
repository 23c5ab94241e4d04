#!/usr/bin/env python3
"""Writes test/fixtures/mmeb/: one tiny MMEB-eval subset as JSON Lines and as Parquet (the Hugging Face MMEB-eval
layout: qry_text, qry_img_path, tgt_text list<string>, tgt_img_path list<string>), with its images, so that the
evaluation harness can be checked to give identical results for both formats.

Needs Pillow and pyarrow (a throw-away virtual environment, as tools/gen_data_fixtures.py describes):
    /usr/bin/python3 -m venv --system-site-packages /tmp/pqvenv && /tmp/pqvenv/bin/pip install pyarrow
    /tmp/pqvenv/bin/python tools/gen_mmeb_fixtures.py
"""
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "mmeb")
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 230), "yellow": (230, 220, 40)}

os.makedirs(os.path.join(OUT, "images"), exist_ok=True)
for name, rgb in COLOURS.items():
    img = Image.new("RGB", (56, 56), rgb)
    for x in range(0, 56, 8):  # a little structure so the images differ in more than their mean
        for y in range(56):
            img.putpixel((x, y), (255 - rgb[0], 255 - rgb[1], 255 - rgb[2]))
    img.save(os.path.join(OUT, "images", f"{name}.png"))

names = list(COLOURS)
rows = []
for n in names:
    rows.append({
        "qry_text": "<|image_1|>\nRepresent the given image for classification\n",
        "qry_img_path": f"images/{n}.png",
        "tgt_text": [n] + [m for m in names if m != n],
        "tgt_img_path": [""] * len(names),
    })
    rows.append({
        "qry_text": f"Find an image of a {n} square.",
        "qry_img_path": "",
        "tgt_text": ["<|image_1|>\nRepresent the given image.\n"] * len(names),
        "tgt_img_path": [f"images/{n}.png"] + [f"images/{m}.png" for m in names if m != n],
    })

os.makedirs(os.path.join(OUT, "jsonl"), exist_ok=True)
with open(os.path.join(OUT, "jsonl", "N24News.jsonl"), "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")

os.makedirs(os.path.join(OUT, "parquet", "N24News"), exist_ok=True)
table = pa.table({
    "qry_text": pa.array([r["qry_text"] for r in rows], pa.string()),
    "qry_img_path": pa.array([r["qry_img_path"] for r in rows], pa.string()),
    "tgt_text": pa.array([r["tgt_text"] for r in rows], pa.list_(pa.string())),
    "tgt_img_path": pa.array([r["tgt_img_path"] for r in rows], pa.list_(pa.string())),
})
pq.write_table(table, os.path.join(OUT, "parquet", "N24News", "test-00000-of-00001.parquet"), row_group_size=3,
               compression="snappy")
print("wrote", os.path.normpath(OUT))
