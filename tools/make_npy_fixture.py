#!/usr/bin/python3
"""Make the tiny numpy-written fixtures for tests/io/test_npy.c.

Developers only (needs Debian's python3-numpy). Run from the repository root:
    /usr/bin/python3 tools/make_npy_fixture.py
Values are k * 0.25 - 1 for k = 0, 1, ... in C order (exact in f4 and f8).
"""
import os
import numpy as np

OUT = "tests/fixtures/npy"


def vals(shape, dtype):
    n = int(np.prod(shape)) if shape else 1
    return (np.arange(n, dtype=np.float64) * 0.25 - 1).astype(dtype).reshape(shape)


def main():
    os.makedirs(OUT, exist_ok=True)
    np.save(os.path.join(OUT, "f8_2x3.npy"), vals((2, 3), "<f8"))
    np.save(os.path.join(OUT, "f4_5.npy"), vals((5,), "<f4"))
    np.save(os.path.join(OUT, "f4_2x3.npy"), vals((2, 3), "<f4"))
    np.save(os.path.join(OUT, "f4_scalar.npy"), vals((), "<f4"))
    np.save(os.path.join(OUT, "f8_scalar.npy"), vals((), "<f8"))
    np.save(os.path.join(OUT, "f4_2x3_fortran.npy"), np.asfortranarray(vals((2, 3), "<f4")))
    np.save(os.path.join(OUT, "i4_3.npy"), np.arange(3, dtype="<i4"))
    with open(os.path.join(OUT, "f4_2x2x2_v2.npy"), "wb") as f:
        np.lib.format.write_array(f, vals((2, 2, 2), "<f4"), version=(2, 0))


if __name__ == "__main__":
    main()
