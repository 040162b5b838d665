#!/usr/bin/python3
"""Make the Pillow reference fixtures for image_resize_bilinear_u8.

Developers only (needs Debian's python3-pil). Builds deterministic 8-bit grey
images from integer formulas that tests/io/test_image.c re-implements, resizes
them with PIL's Image.resize(size, Image.BILINEAR) and writes inputs and
outputs as 8-bit grey PNGs into tests/fixtures/resize/ (names: <input>.png and
<input>_to_<W>x<H>.png). Run from the repository root:
    /usr/bin/python3 tools/make_resize_fixture.py
"""
import os
import PIL
from PIL import Image

OUT = "tests/fixtures/resize"


def pattern_a(w, h):
    """High-frequency pattern: stresses the antialiasing filter."""
    return [(x * 31 + y * 17 + ((x * y) % 23) * 9) % 256 for y in range(h) for x in range(w)]


def pattern_b(w, h):
    """Smooth gradient with a bright disk and a fine checker stripe."""
    px = []
    for y in range(h):
        for x in range(w):
            v = (x * 160) // w + (y * 60) // h
            dx, dy = x - w * 2 // 3, y - h // 3
            if dx * dx + dy * dy < (h // 5) * (h // 5):
                v = 250
            if 20 <= y < 40 and ((x // 2 + y // 2) % 2) == 0:
                v = 30
            px.append(v)
    return px


CASES = [
    ("a37x53", pattern_a, (37, 53), [(16, 16), (64, 48), (37, 20), (80, 53), (111, 159)]),
    ("b300x200", pattern_b, (300, 200), [(224, 224), (61, 45)]),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, fn, (w, h), sizes in CASES:
        im = Image.new("L", (w, h))
        im.putdata(fn(w, h))
        im.save(os.path.join(OUT, name + ".png"))
        for dw, dh in sizes:
            im.resize((dw, dh), Image.BILINEAR).save(os.path.join(OUT, "%s_to_%dx%d.png" % (name, dw, dh)))
    with open(os.path.join(OUT, "VERSION"), "w") as f:
        f.write("Pillow %s\n" % PIL.__version__)


if __name__ == "__main__":
    main()
