#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Select the training corpus for the bundled model and split it.

Walks a CPython standard library (default: pyenv's 3.11.7), keeps the
hand-written Python sources, assigns each file to train or validation by a
hash of its relative path, and writes:

  OUT/manifest.json   every candidate file: path, bytes, sha256, split or the
                      reason it was excluded
  OUT/train.txt       the training files, in path order, separated by
                      <|endoftext|>
  OUT/val.txt         the same for the validation files

The split depends only on the relative path, so the same module lands on the
same side for any CPython patch release.  Nothing here is random.
"""
import argparse
import hashlib
import json
import os
import sys

DEFAULT_SRC = "/root/.pyenv/versions/3.11.7/lib/python3.11"
EOT = "<|endoftext|>"

# Whole folders left out, matched against any component of the relative path.
EXCLUDED_DIRS = {
    "site-packages": "third-party packages (machine specific)",
    "encodings": "generated codec tables",
    "pydoc_data": "generated help text",
    "data": "test data, not code",
    "tokenizedata": "tokenizer test data (odd encodings)",
    "__pycache__": "bytecode cache",
}
MAX_BYTES = 512 * 1024
VAL_PERCENT = 5


def exclusion_reason(rel, raw):
    """Returns why a file is left out, or None to keep it."""
    parts = rel.split("/")
    for p in parts[:-1]:
        if p in EXCLUDED_DIRS:
            return "dir %s/: %s" % (p, EXCLUDED_DIRS[p])
        if p.startswith("config-"):
            return "build configuration (machine specific)"
    if parts[-1].startswith("_sysconfigdata"):
        return "generated build configuration (machine specific)"
    if len(raw) > MAX_BYTES:
        return "larger than %d bytes" % MAX_BYTES
    if len(raw) == 0:
        return "empty"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not valid UTF-8"
    if "\x00" in text:
        return "contains NUL"
    if EOT in text:
        return "contains the document separator"
    return None


def split_of(rel):
    h = hashlib.sha256(rel.encode("utf-8")).digest()
    return "val" if int.from_bytes(h[:4], "big") % 100 < VAL_PERCENT \
        else "train"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default=DEFAULT_SRC,
            help="CPython Lib folder (default %(default)s)")
    ap.add_argument("--out", default="build/train",
            help="output folder (default %(default)s)")
    args = ap.parse_args()

    src = os.path.abspath(args.src)
    if not os.path.isdir(src):
        sys.exit("prepare_data: %s: no such folder" % src)
    rels = []
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for f in files:
            if f.endswith(".py"):
                full = os.path.join(root, f)
                if os.path.islink(full):
                    continue
                rels.append(os.path.relpath(full, src).replace(
                    os.sep, "/"))
    rels.sort()

    os.makedirs(args.out, exist_ok=True)
    entries = []
    streams = {"train": [], "val": []}
    for rel in rels:
        with open(os.path.join(src, rel), "rb") as fh:
            raw = fh.read()
        e = {"path": rel, "bytes": len(raw),
             "sha256": hashlib.sha256(raw).hexdigest()}
        why = exclusion_reason(rel, raw)
        if why:
            e["excluded"] = why
        else:
            e["split"] = split_of(rel)
            streams[e["split"]].append(raw.decode("utf-8"))
        entries.append(e)

    summary = {"src": src, "val_percent": VAL_PERCENT,
           "max_bytes": MAX_BYTES, "excluded_dirs": EXCLUDED_DIRS,
           "separator": EOT}
    for s in ("train", "val"):
        text = EOT.join(streams[s]) + EOT
        with open(os.path.join(args.out, s + ".txt"), "w",
              encoding="utf-8", newline="") as fh:
            fh.write(text)
        summary[s] = {
            "files": len(streams[s]),
            "bytes": sum(len(t.encode("utf-8")) for t in streams[s]),
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        }
    summary["excluded"] = {
        "files": sum(1 for e in entries if "excluded" in e),
        "bytes": sum(e["bytes"] for e in entries if "excluded" in e),
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as fh:
        json.dump({"summary": summary, "files": entries}, fh, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
