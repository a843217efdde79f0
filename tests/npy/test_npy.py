"""test_npy.py — the .npy reader against numpy itself (Debian python3-numpy: run with
/usr/bin/python3). Arrays of every dtype immersive takes and 0 to 4 dimensions, written by
np.save (and by np.lib.format for versions 2.0 and 3.0), are read by im_npy_read and written
back with im_npy_header (npy_roundtrip); np.load must give back the same array. Malformed
images get exit 1 and a reason. Skips (77) when numpy is missing; under CI a skip fails.

usage: /usr/bin/python3 test_npy.py NPY_ROUNDTRIP
"""
import io
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    print("SKIP: numpy is not installed (apt-get install python3-numpy)")
    sys.exit(77)

TOOL = sys.argv[1]
failures = []


def roundtrip(data):
    return subprocess.run([TOOL], input=data, capture_output=True, timeout=30)


def save(arr, version=None):
    b = io.BytesIO()
    if version is None:
        np.save(b, arr)
    else:
        np.lib.format.write_array(b, arr, version=version)
    return b.getvalue()


rng = np.random.default_rng(7)
shapes = [(), (0,), (5,), (3, 4), (2, 0, 3), (2, 3, 4, 5), (1, 1, 7, 1)]
dtypes = [np.float64, np.float32, np.int64, np.int32, np.uint8]
count = 0
for dt in dtypes:
    for shape in shapes:
        for version in (None, (2, 0), (3, 0)):
            if np.issubdtype(dt, np.floating):
                arr = rng.standard_normal(shape).astype(dt)
            else:
                info = np.iinfo(dt)
                arr = rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
            r = roundtrip(save(arr, version))
            count += 1
            what = f"{np.dtype(dt).name} {shape} v{version}"
            if r.returncode != 0:
                failures.append(f"{what}: refused: {r.stderr.decode().strip()}")
                continue
            back = np.load(io.BytesIO(r.stdout))
            if back.dtype != arr.dtype or back.shape != arr.shape or not np.array_equal(back, arr):
                failures.append(f"{what}: came back as {back.dtype} {back.shape}")
            if (len(r.stdout) - back.nbytes) % 64:
                failures.append(f"{what}: the written header is not padded to 64 bytes")

# 1-d Fortran order is the same bytes: accepted; 2-d is refused with the reason
ok1 = roundtrip(save(np.asfortranarray(np.arange(4.0))))
if ok1.returncode != 0:
    failures.append("1-d fortran_order refused: " + ok1.stderr.decode())

good = save(np.arange(12, dtype=np.float64).reshape(3, 4))
cases = {
    "fortran order": (save(np.asfortranarray(np.arange(12.0).reshape(3, 4))), b"Fortran order"),
    "big-endian": (save(np.arange(4, dtype=">f8")), b"big-endian"),
    "unsupported dtype": (save(np.arange(4, dtype=np.int16)), b"dtype '<i2'"),
    "complex": (save(np.zeros(3, dtype=np.complex128)), b"dtype '<c16'"),
    "nine dimensions": (save(np.zeros((1,) * 9)), b"more than 8 dimensions"),
    "truncated data": (good[:-8], b"needs 96 bytes of data, the body holds 88"),
    "extra data": (good + b"\0" * 8, b"needs 96 bytes"),
    "bad magic": (b"\x93NUMPZ" + good[6:], b"does not start"),
    "version 4": (good[:6] + b"\x04\x00" + good[8:], b"version 4.0"),
    "cut header": (good[:40], b"cut short"),
    "empty": (b"", b"does not start"),
    "no newline": (good[:good.index(b"\n")] + b" " + good[good.index(b"\n") + 1:], b"newline"),
    "unknown key": (good.replace(b"'shape'", b"'shapf'"), b"key other than"),
    "shape not ints": (good.replace(b"(3, 4)", b"(3, x)"), b"non-integer"),
}
for what, (data, want) in cases.items():
    r = roundtrip(data)
    if r.returncode != 1:
        failures.append(f"{what}: exit {r.returncode}, expected a refusal")
    elif want not in r.stderr:
        failures.append(f"{what}: the reason {r.stderr!r} lacks {want!r}")

for f in failures:
    print("FAIL", f)
print(f"{count} arrays round-tripped, {len(cases)} malformed images, {len(failures)} failures")
sys.exit(1 if failures else 0)
