#!/usr/bin/env bash
# make_seeds.sh: regenerate the small, synthetic seed corpora in fuzz/corpus/
# (developers only; the seeds are committed). Every seed is made here from
# nothing: DICOM by DCMTK's dump2dcm and codecs, PNG/JPEG by DCMTK's
# dcm2pnm/dcmj2pnm from those, safetensors/npy/config/list files by a few
# lines of Python (standard library only). No image from ../shared/data.
# Files named regress-* are fuzzer findings, kept as seeds so `make fuzz`
# replays them first.
set -euo pipefail
cd "$(dirname "$0")"
out=corpus
# regress-* files are inputs that once crashed a harness (see tests/cli/test_hostile.c): kept
mkdir -p "$out"/{image,safetensors,config,list,npy}
find "$out" -type f ! -name 'regress-*' -delete
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# --- images: 16 x 12 phantoms ---------------------------------------------
python3 - "$tmp" <<'PY'
import struct, sys
d = sys.argv[1]
w, h = 16, 12
def val(x, y, hi):
    t = 0.5 * x / (w - 1) + 0.2 * y / (h - 1)
    if abs(2 * x - w) < w // 4: t = 0.95
    return int(t * hi)
open(f"{d}/p16.raw", "wb").write(b"".join(struct.pack("<H", val(x, y, 4000)) for y in range(h) for x in range(w)))
open(f"{d}/s16.raw", "wb").write(b"".join(struct.pack("<h", val(x, y, 4000) - 2000) for y in range(h) for x in range(w)))
open(f"{d}/p8.raw", "wb").write(bytes(val(x, y, 255) for y in range(h) for x in range(w)))
open(f"{d}/mf.raw", "wb").write(b"".join(struct.pack("<H", val(x, y, 4000) ^ f) for f in range(2) for y in range(h) for x in range(w)))
PY
dump() { # name sop photometric bits stored signed pixelfile extra...
  local name=$1 sop=$2 pi=$3 ba=$4 bs=$5 sg=$6 raw=$7; shift 7
  {
    echo "(0008,0016) UI =$sop"; echo "(0008,0018) UI [1.2.826.0.1.3680043.9.7777.99]"
    echo "(0028,0002) US 1"; echo "(0028,0004) CS [$pi]"
    echo "(0028,0010) US 12"; echo "(0028,0011) US 16"
    echo "(0028,0100) US $ba"; echo "(0028,0101) US $bs"; echo "(0028,0102) US $((bs - 1))"; echo "(0028,0103) US $sg"
    for l in "$@"; do echo "$l"; done
    if [ "$ba" = 8 ]; then echo "(7fe0,0010) OB =$tmp/$raw"; else echo "(7fe0,0010) OW =$tmp/$raw"; fi
  } > "$tmp/$name.dump"
  dump2dcm -q "$tmp/$name.dump" "$out/image/$name.dcm"
}
dump dx16_window DigitalXRayImageStorageForPresentation MONOCHROME2 16 12 0 p16.raw "(0028,1050) DS [1800\\900]" "(0028,1051) DS [2000\\500]"
dump cr_rescale_m1 ComputedRadiographyImageStorage MONOCHROME1 16 12 0 p16.raw "(0028,1052) DS [-1024]" "(0028,1053) DS [2]"
dump signed SecondaryCaptureImageStorage MONOCHROME2 16 16 1 s16.raw
dump sc8_voilut SecondaryCaptureImageStorage MONOCHROME2 8 8 0 p8.raw \
  "(0028,3010) SQ (Sequence with undefined length)" "(fffe,e000) na (Item with undefined length)" \
  "(0028,3002) US 4\\0\\16" "(0028,3006) US 0\\100\\4000\\65535" \
  "(fffe,e00d) na (ItemDelimitationItem)" "(fffe,e0dd) na (SequenceDelimitationItem)"
dump multiframe MultiframeGrayscaleWordSecondaryCaptureImageStorage MONOCHROME2 16 12 0 mf.raw "(0028,0008) IS [2]"
dcmcjpeg -q "$out/image/dx16_window.dcm" "$out/image/jpeg_lossless.dcm"
dcmcjpls -q "$out/image/cr_rescale_m1.dcm" "$out/image/jpegls.dcm"
dcmcrle -q "$out/image/multiframe.dcm" "$out/image/rle_multiframe.dcm"
dcmcjpeg -q +eb "$out/image/sc8_voilut.dcm" "$out/image/jpeg_baseline.dcm"
dcmconv -q -F +ti "$out/image/signed.dcm" "$out/image/bare_implicit.dcm"
dcm2pnm -q --write-png "$out/image/sc8_voilut.dcm" "$out/image/grey8.png"
dcm2pnm -q --write-16-bit-png "$out/image/dx16_window.dcm" "$out/image/grey16.png"
dcmj2pnm -q --write-jpeg "$out/image/sc8_voilut.dcm" "$out/image/grey.jpg"

# --- safetensors, npy, config, list ------------------------------------------
python3 - "$out" <<'PY'
import json, struct, sys
o = sys.argv[1]
def st(name, tensors, meta=None):
    hdr, data, off = {}, b"", 0
    if meta: hdr["__metadata__"] = meta
    for k, (dt, shape, raw) in tensors.items():
        hdr[k] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        data += raw; off += len(raw)
    j = json.dumps(hdr).encode()
    j += b" " * (-len(j) % 8)
    open(f"{o}/safetensors/{name}", "wb").write(struct.pack("<Q", len(j)) + j + data)
st("f32.safetensors", {"w": ("F32", [2, 3], struct.pack("<6f", *range(6))), "b": ("F32", [3], struct.pack("<3f", 1, 2, 3))},
   {"format": "pt"})
st("mixed.safetensors", {"h": ("F16", [4], struct.pack("<4H", 0x3c00, 0x4000, 0x7c00, 0x0001)),
                         "bf": ("BF16", [2], struct.pack("<2H", 0x3f80, 0xc000)),
                         "d": ("F64", [1], struct.pack("<d", 2.5)), "i": ("I64", [1], struct.pack("<q", 7))})
st("scalar.safetensors", {"s": ("F32", [], struct.pack("<f", 1.0)), "z": ("F32", [0, 4], b"")})
def npy(name, shape, fmt, vals, descr, ver=1):
    d = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, "(%s)" % "".join(f"{s}, " for s in shape) if len(shape) == 1 else str(tuple(shape)))
    pre = 10 if ver == 1 else 12
    d += " " * (-(pre + len(d) + 1) % 64) + "\n"
    head = b"\x93NUMPY" + bytes([ver, 0]) + (struct.pack("<H", len(d)) if ver == 1 else struct.pack("<I", len(d)))
    open(f"{o}/npy/{name}", "wb").write(head + d.encode() + struct.pack("<%d%s" % (len(vals), fmt), *vals))
npy("f4_2x3.npy", [2, 3], "f", range(6), "<f4")
npy("f8_4.npy", [4], "d", [0.5, 1, 2, 3], "<f8", 2)
npy("scalar.npy", [], "f", [3.0], "<f4")
cfg = {"model_type": "vit_mae", "hidden_size": 192, "num_hidden_layers": 12, "num_attention_heads": 3,
       "intermediate_size": 768, "decoder_hidden_size": 512, "decoder_num_hidden_layers": 8,
       "decoder_num_attention_heads": 16, "decoder_intermediate_size": 2048, "image_size": 224, "patch_size": 16,
       "num_channels": 3, "qkv_bias": True, "norm_pix_loss": False, "mask_ratio": 0.75, "layer_norm_eps": 1e-12,
       "initializer_range": 0.02, "hidden_act": "gelu"}
open(f"{o}/config/tiny.json", "w").write(json.dumps(cfg, indent=2))
open(f"{o}/config/small.json", "w").write(json.dumps({"image_size": [64, 64], "patch_size": 16, "hidden_size": 32,
    "num_attention_heads": 2, "decoder_hidden_size": 16, "decoder_num_attention_heads": 2}))
open(f"{o}/config/empty.json", "w").write("{}")
open(f"{o}/list/list.txt", "w").write("# radiographs\nimages/a.png\n  images/b.jpg  \n\n/abs/c.dcm\r\nimages/a.png\n")
open(f"{o}/list/one.txt", "w").write("x.png")
PY
du -sh "$out"/*; ls "$out"/*
