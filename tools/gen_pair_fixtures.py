#!/usr/bin/env python3
"""Generate the stage-2 pair data-layer fixtures for moca-ts (test/data/pairs/*.test.ts) into test/fixtures/pairs/.

Needs Pillow and pyarrow, like tools/gen_data_fixtures.py (same throw-away virtual environment):

    /usr/bin/python3 -m venv --system-site-packages /tmp/pqvenv && /tmp/pqvenv/bin/pip install pyarrow
    /tmp/pqvenv/bin/python tools/gen_pair_fixtures.py

The MMEB-style rows follow MMEB-train / MoCa-CL-Pairs (spec §3.1): string columns qry, qry_image_path, pos_text,
pos_image_path, neg_text, neg_image_path, the neg fields being `str(list)` — written here by Python's own `str()`, so
the TypeScript literal parser is checked against real `repr` output. The Parquet files are written with pyarrow as
Hugging Face `datasets` writes them (snappy by default). Everything is deterministic and tiny (< 30 kB).
Written files:
  img/{red,green,blue}.png   8×8 images the rows refer to (relative paths; the data layer does not open them)
  literals.json              [{literal, value}] — value = ast.literal_eval(literal), the ground truth for the
                             parser — and [{literal, invalid: true}] that ast.literal_eval refuses
  mmeb.jsonl                 MMEB-style rows: good rows (every filling rule) then bad rows of every kind
  mmeb_expected.json         per good row of mmeb.jsonl, what MoCa's TaskBatchDataset.__getitem__ yields (texts
                             and image paths; a randomly replaced negative as {"oneOf": [...]}), computed by a
                             transcription of that code below (`moca_getitem`)
  mmeb.parquet               the good rows of mmeb.jsonl plus two bad ones, snappy, row groups of 4
  mmeb_lists.parquet         gzip; int64 `id`, qry_image_path as the HF `Image` struct {bytes, path},
                             neg_text / neg_image_path as list<string>
  mmeb_nonegs.parquet        MMEB-style columns without neg_text / neg_image_path (refused unless negativeRatio 0)
  text.jsonl                 text-only pairs in the accepted spellings, then bad ones
  shards/train-0000{0,1}-of-00002.parquet   a directory subset of sentence-transformers triplets (3 rows each)
"""

import ast
import io
import json
import os
import shutil
import warnings

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "pairs")
PHI = "<|image_1|>"
QWEN = "<|vision_start|><|image_pad|><|vision_end|>"

warnings.simplefilter("ignore")  # literal_eval of "\q" warns about the invalid escape (and keeps it)


def png_bytes(color):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="PNG")
    return buf.getvalue()


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(row if isinstance(row, str) else json.dumps(row, ensure_ascii=False))
            f.write("\n")


# ----------------------------------------------------------------------------------------------------------------
# Python literals

TRICKY = ["it's", 'say "hi"', "both ' and \"", "tab\there", "nl\nx", "\x00\x1f\x7f\x80\xa0\xad", "é日本🙂",
          "\u2028\u200b", "\\back\\slash", "", " ", "\ud800"]

VALID_LITERALS = [
    "[]",
    "[ ]",
    "['a']",
    "['a',]",
    "[ 'a' , \"b's\" , 'c\\n' , ]",
    "'plain'",
    '"plain"',
    "u'x'",
    "r'\\d+\\n'",
    'R"a\\\\"',
    "r'\\''",
    "'a' 'b'",
    "['a' \"b\", 'c']",
    "'''tri'ple'''",
    '"""multi\nline"""',
    "['\\x41\\u00e9\\U0001F600\\101\\0\\7\\a\\b\\f\\v\\r\\t']",
    "['\\q\\d']",
    "['line\\\ncont']",
    "[\n  'a',  # a comment\n  'b'\n]",
    "  ['a']  ",
    "['', '', '']",
    "['\\'', \"\\\"\"]",
    "['\\777', '\\1234']",
    "['\\ud83d\\ude00']",
    "['a',\\\n 'b']",
    str(TRICKY),
    str(["<|image_1|>\nRepresent the given image.\n"] * 2),
    repr("just one string"),
]

INVALID_LITERALS = [
    "",
    "   ",
    "['a'",
    "['a' 'b'",
    "['a',, 'b']",
    "[,]",
    "['a' 'b' c]",
    "['a', 1]",
    "['a', None]",
    "[['a']]",
    "('a', 'b')",
    "'unterminated",
    "['a\nb']",
    "['\\x4']",
    "['\\u12']",
    "['\\U00110000']",
    "b'bytes'",
    "['a'] extra",
    "[1]",
    "{'a': 1}",
    "\"mismatched'",
    "['a'\\",
    "'a\\'",
]


def literal_cases():
    cases = []
    for lit in VALID_LITERALS:
        v = ast.literal_eval(lit)
        assert isinstance(v, (list, str)), lit
        cases.append({"literal": lit, "value": v if isinstance(v, list) else [v]})
    for lit in INVALID_LITERALS:
        try:
            v = ast.literal_eval(lit)
        except (SyntaxError, ValueError):
            cases.append({"literal": lit, "invalid": True})
            continue
        # literal_eval accepted it: it must at least not be a list/str of strings.
        ok = isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))
        assert not ok, f"{lit!r} is a valid string list for Python"
        cases.append({"literal": lit, "invalid": True})
    return cases


# ----------------------------------------------------------------------------------------------------------------
# MMEB rows

def mmeb(qry, qimg, pos, pimg, neg_text, neg_img, **extra):
    return {"qry": qry, "qry_image_path": qimg, "pos_text": pos, "pos_image_path": pimg,
            "neg_text": neg_text, "neg_image_path": neg_img, **extra}


CLS_Q = f"{PHI}\nRepresent the given image for binary classification\n"
T2I_Q = "Find me an everyday image that matches the given caption: A cat.\n"
IMG_T = f"{PHI}\nRepresent the given image.\n"

GOOD_MMEB = [
    # 0: MMEB-train classification: one plain-string negative label (not a literal)
    mmeb(CLS_Q, "img/red.png", "Yes", "", "No", ""),
    # 1: t2i with image negatives
    mmeb(T2I_Q, "", IMG_T, "img/blue.png", str([IMG_T, IMG_T]), str(["img/green.png", "img/red.png"])),
    # 2: one negative → repeated
    mmeb(CLS_Q, "img/green.png", "a green square", "", str(["only one"]), str([""])),
    # 3: three negatives → first two; tricky characters
    mmeb("what is it?", "", "it's this", "", str(["it's", 'say "hi"', "third\n"]), str(["", "", ""])),
    # 4: all negatives empty and identical → the positive text
    mmeb(CLS_Q, "img/red.png", "red", "", str(["", ""]), str(["", ""])),
    # 5: an empty negative among different ones → a random non-empty one of the whole list
    mmeb(CLS_Q, "img/blue.png", "blue", "", str(["", "alpha", "beta", ""]), str(["", "", "", ""])),
    # 6: no negatives
    mmeb("q6", "", "p6", "", "[]", "[]"),
    # 7: placeholder in a text without an image → removed
    mmeb(f"{PHI}\nno image here", "", f"{PHI} pos without image", "", str([f"{PHI}neg"]), str([""])),
    # 8: unicode
    mmeb("Ünïcödé 日本語 🙂", "", "ピザ", "", str(["é\t\x00\x7f", "\U0001F600"]), str(["", ""])),
    # 9: MMEB-train without negatives: "" fields
    mmeb("q9", "", "p9", "", "", ""),
    # 10: with an id; one image for all negatives (a one-entry image list)
    mmeb(T2I_Q, "", IMG_T, "img/blue.png", str([IMG_T, IMG_T, IMG_T]), str(["img/green.png"]), id="row-ten"),
    # 11: an empty negative text with an image (replaced by a text that has the placeholder)
    mmeb(T2I_Q, "", IMG_T, "img/blue.png", str(["", IMG_T]), str(["img/red.png", "img/green.png"])),
]

BAD_MMEB = [
    # 12: missing pos_text
    {"qry": "q", "qry_image_path": "", "pos_image_path": "", "neg_text": "[]", "neg_image_path": "[]"},
    # 13: malformed neg_text (unterminated list)
    mmeb("q", "", "p", "", "['a', 'b'", "['', '']"),
    # 14: image without a placeholder in its text
    mmeb("q", "", "no placeholder", "img/red.png", "[]", "[]"),
    # 15: 3 negative texts, 2 negative images
    mmeb("q", "", "p", "", str(["a", "b", "c"]), str(["img/red.png", "img/green.png"])),
    # 16: invalid JSON
    '{"qry": "q", "qry_image_path": ',
    # 17: a number in the negative list
    mmeb("q", "", "p", "", "['a', 3]", "['', '']"),
    # 18: remote image URL
    mmeb("q", "https://example.com/x.png", "p", "", "[]", "[]"),
    # 19: not an object
    "[1, 2]",
    # 20: no query text and no image
    mmeb("", "", "p", "", "[]", "[]"),
    # 21: qry is a number
    mmeb(5, "", "p", "", "[]", "[]"),
]


def safe_list(s):
    """MoCa eval()s the field; for the plain-string / empty MMEB-train fields it would fail, so mirror our rule."""
    if s.strip() == "":
        return []
    try:
        v = ast.literal_eval(s)
    except (SyntaxError, ValueError):
        return [s]
    return v


def moca_getitem(item, negative_ratio=2):
    """Transcription of MoCa's TaskBatchDataset.__getitem__ text / path handling (random.choice → oneOf)."""
    qry_text, qry_image_path, pos_text, pos_image_path = (
        item["qry"], item["qry_image_path"], item["pos_text"], item["pos_image_path"])

    def filter_hard_negatives(negs):
        negs = safe_list(negs)
        if not isinstance(negs, list):
            negs = [negs]
        if len(negs) < negative_ratio and len(negs) > 0:
            negs += [negs[-1]] * (negative_ratio - len(negs))
        return negs[:negative_ratio]

    neg_text_list, neg_image_path_list = item["neg_text"], item["neg_image_path"]
    neg_texts = filter_hard_negatives(neg_text_list)
    neg_image_paths = filter_hard_negatives(neg_image_path_list)
    if not neg_image_paths:  # text-only negatives (MoCa: zip() would just stop early)
        neg_image_paths = [""] * len(neg_texts)
    for ind, neg in enumerate(neg_texts):
        if neg == "":
            full = safe_list(neg_text_list)
            if len(set(full)) == 1:
                neg_texts[ind] = pos_text
            else:
                neg_texts[ind] = {"oneOf": [t for t in full if t != ""]}

    def rewrite(text, path):
        if isinstance(text, dict):
            return {"oneOf": [rewrite(t, path) for t in text["oneOf"]]}
        text = text.replace(PHI, QWEN)
        return text.replace(QWEN, "") if path == "" else text

    return {
        "qry": rewrite(qry_text, qry_image_path),
        "qry_image_path": qry_image_path,
        "pos_text": rewrite(pos_text, pos_image_path),
        "pos_image_path": pos_image_path,
        "neg_texts": [rewrite(t, p) for t, p in zip(neg_texts, neg_image_paths)],
        "neg_image_paths": neg_image_paths,
    }


# ----------------------------------------------------------------------------------------------------------------
# Text-only rows

GOOD_TEXT = [
    {"query": "what is nq?", "positive": "natural questions", "negatives": ["n1", "n2", "n3"]},
    {"qry": "q1", "pos": "p1", "neg": "single"},
    {"anchor": "a2", "positive": "p2", "negative": "n2"},
    {"query": "q3", "pos": ["p3a", "p3b"], "neg": ["", "x"]},
    {"query": "q4", "positive": "p4"},
]
BAD_TEXT = [
    {"query": "q5", "positive": 5},
    {"query": "q6", "qry": "q6b", "positive": "p6"},
    {"positive": "p7"},
]


def main():
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(os.path.join(OUT, "img"))
    os.makedirs(os.path.join(OUT, "shards"))
    colors = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
    for name, c in colors.items():
        with open(os.path.join(OUT, "img", f"{name}.png"), "wb") as f:
            f.write(png_bytes(c))

    with open(os.path.join(OUT, "literals.json"), "w", encoding="utf-8") as f:
        json.dump(literal_cases(), f, ensure_ascii=True, indent=1)

    write_jsonl(os.path.join(OUT, "mmeb.jsonl"), GOOD_MMEB + BAD_MMEB)
    with open(os.path.join(OUT, "mmeb_expected.json"), "w", encoding="utf-8") as f:
        json.dump([moca_getitem(r) for r in GOOD_MMEB], f, ensure_ascii=True, indent=1)

    cols = ["qry", "qry_image_path", "pos_text", "pos_image_path", "neg_text", "neg_image_path"]
    rows = GOOD_MMEB + [BAD_MMEB[1], BAD_MMEB[2]]
    table = pa.table({c: pa.array([r[c] for r in rows], pa.string()) for c in cols})
    pq.write_table(table, os.path.join(OUT, "mmeb.parquet"), row_group_size=4)

    image_struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    lists = pa.table({
        "id": pa.array([100, 101, 102], pa.int64()),
        "qry": pa.array([IMG_T, IMG_T, "text query"], pa.string()),
        "qry_image_path": pa.array([
            {"bytes": png_bytes(colors["red"]), "path": "red.png"},
            {"bytes": None, "path": "img/green.png"},
            None,
        ], image_struct),
        "pos_text": pa.array(["red", "green", "plain"], pa.string()),
        "pos_image_path": pa.array(["", "", ""], pa.string()),
        "neg_text": pa.array([["blue", "green"], ["only"], []], pa.list_(pa.string())),
        "neg_image_path": pa.array([["", ""], [""], []], pa.list_(pa.string())),
    })
    features = {"info": {"features": {"qry_image_path": {"_type": "Image"}}}}
    lists = lists.replace_schema_metadata({"huggingface": json.dumps(features)})
    pq.write_table(lists, os.path.join(OUT, "mmeb_lists.parquet"), compression="gzip")

    nonegs = pa.table({c: pa.array([r[c] for r in GOOD_MMEB[:3]], pa.string()) for c in cols[:4]})
    pq.write_table(nonegs, os.path.join(OUT, "mmeb_nonegs.parquet"))

    write_jsonl(os.path.join(OUT, "text.jsonl"), GOOD_TEXT + BAD_TEXT)

    for shard in range(2):
        t = pa.table({
            "anchor": [f"a{shard}{i}" for i in range(3)],
            "positive": [f"p{shard}{i}" for i in range(3)],
            "negative": [f"n{shard}{i}" for i in range(3)],
        })
        pq.write_table(t, os.path.join(OUT, "shards", f"train-0000{shard}-of-00002.parquet"), compression="gzip")


if __name__ == "__main__":
    main()
