#!/usr/bin/env python3
"""check_symbols.py — fails when an object exports a symbol without the im_ prefix.
usage: check_symbols.py OBJECT..."""
import subprocess
import sys

bad, good = [], 0
for obj in sys.argv[1:]:
    out = subprocess.run(["nm", "-g", "--defined-only", obj], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        name = parts[2]
        if name.startswith("im_"):
            good += 1
        else:
            bad.append(f"{obj}: {name}")
if bad:
    print("symbols exported without the im_ prefix:\n  " + "\n  ".join(bad))
    sys.exit(1)
if good == 0:
    print("no im_ symbols found: is the object empty?")
    sys.exit(1)
print(f"{good} exported symbols, all im_*")
