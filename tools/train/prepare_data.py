#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Select the training corpus for the bundled model and split it.

Walks a CPython standard library (default: pyenv's 3.11.7), keeps the
hand-written Python sources, assigns each file to train or validation by a
hash of its relative path.  With --site, also adds the pure-Python sources
of the permissively licensed packages in the reference venv's site-packages
(SITE_PACKAGES below, licences listed there; vendored copies, generated and
minified files left out, files identical to an earlier one dropped, at most
SITE_CAP_BYTES per package, picked in the order of a hash of their path).
Their hash-selected 5 % is held out (OUT/val_site.txt) and never trained on;
the validation set proper (OUT/val.txt) stays the stdlib's alone, so that
validation losses are comparable with the stdlib-only model.  Writes:

  OUT/manifest.json   every candidate file: path, bytes, sha256, split or the
                      reason it was excluded
  OUT/train.txt       the training files, in path order, separated by
                      <|endoftext|>
  OUT/val.txt         the same for the stdlib validation files
  OUT/val_site.txt    the held-out site-packages files (not trained on;
                      only with --site)

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

DEFAULT_SITE = "build/venv/lib/python3.11/site-packages"
# Top-level names in site-packages that are used, with their licence (from
# each distribution's METADATA).  Left out: certifi and tqdm (MPL-2.0),
# regex (CNRI-Python), nvidia/ and cuda/ (NVIDIA packages), hf_xet (no
# Python sources).
SITE_PACKAGES = {
    "transformers": "Apache-2.0",
    "torch": "BSD-3-Clause (PyTorch; bundled parts Apache-2.0/MIT/BSD)",
    "functorch": "BSD-3-Clause (part of torch)",
    "torchgen": "BSD-3-Clause (part of torch)",
    "sympy": "BSD-3-Clause",
    "isympy.py": "BSD-3-Clause (part of sympy)",
    "numpy": "BSD-3-Clause",
    "networkx": "BSD-3-Clause",
    "pip": "MIT",
    "pygments": "BSD-2-Clause",
    "huggingface_hub": "Apache-2.0",
    "setuptools": "MIT",
    "_distutils_hack": "MIT (part of setuptools)",
    "mpmath": "BSD-3-Clause",
    "pydantic": "MIT",
    "pydantic_core": "MIT",
    "triton": "MIT",
    "rich": "MIT",
    "fsspec": "BSD-3-Clause",
    "gguf": "MIT",
    "filelock": "MIT",
    "anyio": "MIT",
    "jinja2": "BSD-3-Clause",
    "markupsafe": "BSD-3-Clause",
    "packaging": "Apache-2.0 OR BSD-2-Clause",
    "click": "BSD-3-Clause",
    "typer": "MIT",
    "urllib3": "MIT",
    "requests": "Apache-2.0",
    "httpx2": "BSD-3-Clause",
    "httpcore2": "BSD-3-Clause",
    "h11": "MIT",
    "idna": "BSD-3-Clause",
    "charset_normalizer": "MIT",
    "markdown_it": "MIT",
    "mdurl": "MIT",
    "yaml": "MIT",
    "tokenizers": "Apache-2.0",
    "safetensors": "Apache-2.0",
    "truststore": "MIT",
    "shellingham": "ISC",
    "typing_inspection": "MIT",
    "annotated_types": "MIT",
    "annotated_doc": "MIT",
    "typing_extensions.py": "PSF-2.0",
}
SITE_EXCLUDED_DIRS = {
    "_vendor": "vendored copies of other packages",
    "_distutils": "copy of the stdlib's distutils",
    "_generated": "generated from other files of the package",
    "__pycache__": "bytecode cache",
}
SITE_EXCLUDED_FILES = {
    "idna/idnadata.py": "generated Unicode tables",
    "idna/uts46data.py": "generated Unicode tables",
}
SITE_PREFIX = "venv-site-packages/"   # manifest paths, split hash
SITE_CAP_BYTES = 6 * 1000 * 1000   # per top-level package
MAX_LINE = 1000                    # longest line, characters
MAX_MEAN_LINE = 100                # mean line length, characters


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


def site_exclusion_reason(rel, raw):
    """exclusion_reason() for a site-packages file, plus vendored copies and
    generated or minified files (very long lines)."""
    parts = rel.split("/")
    if parts[0] not in SITE_PACKAGES:
        return "package not in SITE_PACKAGES (licence or not Python)"
    for p in parts[:-1]:
        if p in SITE_EXCLUDED_DIRS:
            return "dir %s/: %s" % (p, SITE_EXCLUDED_DIRS[p])
    if rel in SITE_EXCLUDED_FILES:
        return SITE_EXCLUDED_FILES[rel]
    why = exclusion_reason(rel, raw)
    if why:
        return why
    lines = raw.decode("utf-8").split("\n")
    if max(len(ln) for ln in lines) > MAX_LINE:
        return "a line longer than %d characters (generated)" % MAX_LINE
    if len(raw) / len(lines) > MAX_MEAN_LINE:
        return "mean line longer than %d characters (generated)" % \
            MAX_MEAN_LINE
    return None


def split_of(rel):
    h = hashlib.sha256(rel.encode("utf-8")).digest()
    return "val" if int.from_bytes(h[:4], "big") % 100 < VAL_PERCENT \
        else "train"


def list_py(top):
    """Relative paths of the regular .py files under top, sorted."""
    rels = []
    for root, dirs, files in os.walk(top):
        dirs.sort()
        for f in files:
            if f.endswith(".py"):
                full = os.path.join(root, f)
                if os.path.islink(full):
                    continue
                rels.append(os.path.relpath(full, top).replace(
                    os.sep, "/"))
    rels.sort()
    return rels


def add_site(site, entries, streams):
    """Appends the chosen site-packages files to streams["train"] (after
    the stdlib's) and streams["val_site"]; returns their manifest entries
    (paths prefixed with SITE_PREFIX)."""
    site = os.path.abspath(site)
    if not os.path.isdir(site):
        sys.exit("prepare_data: %s: no such folder" % site)
    seen = {e["sha256"] for e in entries if "excluded" not in e}
    # Per package, files in the order of a hash of their path, so a cap
    # takes an even sample of the package; then written in path order.
    by_pkg = {}
    for rel in list_py(site):
        by_pkg.setdefault(rel.split("/")[0], []).append(rel)
    out = []
    for pkg in sorted(by_pkg):
        rels = sorted(by_pkg[pkg], key=lambda r: hashlib.sha256(
            (SITE_PREFIX + r).encode("utf-8")).hexdigest())
        used = 0
        for rel in rels:
            with open(os.path.join(site, rel), "rb") as fh:
                raw = fh.read()
            h = hashlib.sha256(raw).hexdigest()
            e = {"path": SITE_PREFIX + rel, "bytes": len(raw),
                 "sha256": h}
            why = site_exclusion_reason(rel, raw)
            if not why and h in seen:
                why = "identical to an earlier file"
            if not why and used + len(raw) > SITE_CAP_BYTES:
                why = "package over its %d-byte cap" % SITE_CAP_BYTES
            if why:
                e["excluded"] = why
            else:
                seen.add(h)
                used += len(raw)
                sp = split_of(e["path"])
                e["split"] = "train" if sp == "train" else "val_site"
                e["_text"] = raw.decode("utf-8")
            out.append(e)
    out.sort(key=lambda e: e["path"])
    for e in out:
        if "_text" in e:
            streams[e["split"]].append(e.pop("_text"))
    return out


def site_summary(site, site_entries):
    versions = sorted(d[:-len(".dist-info")] for d in os.listdir(site)
                      if d.endswith(".dist-info"))
    per_pkg = {}
    for e in site_entries:
        if e.get("split") == "train":
            pkg = e["path"].split("/")[1]
            p = per_pkg.setdefault(pkg, {"files": 0, "bytes": 0,
                                         "licence": SITE_PACKAGES[pkg]})
            p["files"] += 1
            p["bytes"] += e["bytes"]
    return {"path": site, "distributions": versions,
            "cap_bytes_per_package": SITE_CAP_BYTES, "max_line": MAX_LINE,
            "max_mean_line": MAX_MEAN_LINE,
            "excluded_dirs": SITE_EXCLUDED_DIRS,
            "excluded_files": SITE_EXCLUDED_FILES,
            "train_by_package": per_pkg}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default=DEFAULT_SRC,
            help="CPython Lib folder (default %(default)s)")
    ap.add_argument("--site", default="",
            help="also take the packages of this site-packages folder, "
            "e.g. %s (default: the stdlib alone, the shipped model's "
            "corpus)" % DEFAULT_SITE)
    ap.add_argument("--out", default="build/train",
            help="output folder (default %(default)s)")
    args = ap.parse_args()

    src = os.path.abspath(args.src)
    if not os.path.isdir(src):
        sys.exit("prepare_data: %s: no such folder" % src)
    rels = list_py(src)

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

    site_entries = []
    splits = ("train", "val")
    if args.site:
        streams["val_site"] = []
        site_entries = add_site(args.site, entries, streams)
        splits += ("val_site",)

    summary = {"src": src, "val_percent": VAL_PERCENT,
           "max_bytes": MAX_BYTES, "excluded_dirs": EXCLUDED_DIRS,
           "separator": EOT}
    if args.site:
        summary["site"] = site_summary(args.site, site_entries)
    for s in splits:
        text = EOT.join(streams[s]) + EOT
        with open(os.path.join(args.out, s + ".txt"), "w",
              encoding="utf-8", newline="") as fh:
            fh.write(text)
        summary[s] = {
            "files": len(streams[s]),
            "bytes": sum(len(t.encode("utf-8")) for t in streams[s]),
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        }
    if args.site:
        summary["stdlib_train_files"] = sum(
            1 for e in entries if e.get("split") == "train")
    entries += site_entries
    summary["excluded"] = {
        "files": sum(1 for e in entries if "excluded" in e),
        "bytes": sum(e["bytes"] for e in entries if "excluded" in e),
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as fh:
        json.dump({"summary": summary, "files": entries}, fh, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
