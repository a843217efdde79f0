"""test_toml.py — the TOML reader against toml-test's TOML 1.0 files, through toml-decode.

Every valid file must decode to the suite's tagged JSON (compared by value: integers as
integers, floats as floats with nan and inf, dates and times by their fields), every invalid
file must be refused with exit 1 and a "name:line:col: reason" message. The list of files is
the suite's own (tests/files-toml-1.0.0). Skips (exit 77) when the corpus is absent; under CI
a skip fails the run (tools/check).

usage: python3 test_toml.py TOML_DECODE CORPORA_DIR
"""
import json
import math
import os
import re
import subprocess
import sys

DT = re.compile(r"^(?:(\d{4})-(\d{2})-(\d{2}))?[Tt ]?(?:(\d{2}):(\d{2})(?::(\d{2}))?(?:\.(\d+))?)?"
                r"([Zz]|[+-]\d{2}:\d{2})?$")


def dt_key(s):
    m = DT.match(s)
    if not m:
        raise ValueError(f"not a date/time: {s!r}")
    y, mo, d, h, mi, sec, frac, off = m.groups()
    ns = int((frac or "").ljust(9, "0")[:9] or 0)
    if off in ("Z", "z", "+00:00", "-00:00"):
        off = "Z"
    return (y, mo, d, h, mi, sec or "00", ns, off)


def same(want, got, path):
    """None when equal, else where and how they differ."""
    if isinstance(want, dict) and set(want) == {"type", "value"} and isinstance(want["value"], str):
        if not (isinstance(got, dict) and set(got) == {"type", "value"}):
            return f"{path}: want a {want['type']}, got {got!r}"
        if want["type"] != got["type"]:
            return f"{path}: want type {want['type']}, got {got['type']}"
        t, a, b = want["type"], want["value"], got["value"]
        if t == "integer":
            ok = int(a) == int(b)
        elif t == "float":
            fa, fb = float(a), float(b)
            ok = (math.isnan(fa) and math.isnan(fb)) or fa == fb
        elif t in ("datetime", "datetime-local", "date-local", "time-local"):
            ok = dt_key(a) == dt_key(b)
        else:
            ok = a == b
        return None if ok else f"{path}: want {a!r}, got {b!r}"
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return f"{path}: want a table, got {got!r}"
        if set(want) != set(got):
            return f"{path}: keys differ: want {sorted(want)}, got {sorted(got)}"
        for k in want:
            r = same(want[k], got[k], f"{path}.{k}")
            if r:
                return r
        return None
    if isinstance(want, list):
        if not isinstance(got, list) or len(want) != len(got):
            return f"{path}: want an array of {len(want)}, got {got!r}"
        for i, (a, b) in enumerate(zip(want, got)):
            r = same(a, b, f"{path}[{i}]")
            if r:
                return r
        return None
    return None if want == got else f"{path}: want {want!r}, got {got!r}"


LOC = re.compile(r"^\S+:\d+:\d+: \S")


def main():
    decode, corpora = sys.argv[1], sys.argv[2]
    root = os.path.join(corpora, "toml-test", "tests")
    listing = os.path.join(root, "files-toml-1.0.0")
    if not os.path.exists(listing):
        print(f"SKIP: toml-test corpus not found at {root}")
        return 77
    files = [l.strip() for l in open(listing) if l.strip().endswith(".toml")]
    failures, valid, invalid = [], 0, 0
    for rel in files:
        path = os.path.join(root, rel)
        with open(path, "rb") as f:
            text = f.read()
        try:
            r = subprocess.run([decode, rel], input=text, capture_output=True, timeout=10)
        except subprocess.TimeoutExpired:
            failures.append(f"{rel}: toml-decode hung")
            continue
        if r.returncode not in (0, 1):
            failures.append(f"{rel}: exit {r.returncode} (a crash?) {r.stderr[-300:]!r}")
            continue
        if rel.startswith("valid/"):
            valid += 1
            if r.returncode != 0:
                failures.append(f"{rel}: refused a valid file: {r.stderr.decode().strip()}")
                continue
            want = json.load(open(path[:-5] + ".json"))
            diff = same(want, json.loads(r.stdout), "$")
            if diff:
                failures.append(f"{rel}: {diff}")
        else:
            invalid += 1
            if r.returncode != 1:
                failures.append(f"{rel}: accepted an invalid file: {r.stdout[:200]!r}")
            elif not LOC.match(r.stderr.decode("utf-8", "replace")):
                failures.append(f"{rel}: error without line:col: {r.stderr!r}")
    for f in failures:
        print("FAIL", f)
    print(f"{valid} valid and {invalid} invalid files, {len(failures)} failures")
    if valid < 200 or invalid < 400:
        print("FAIL: fewer files than the suite holds")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
