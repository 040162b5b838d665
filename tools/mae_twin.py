#!/usr/bin/python3
"""mae_twin.py: the PyTorch twin of skelex's ViT masked autoencoder.

Developers only. The C program never runs this script and the test suite does
not need it: it exists to (re)produce the committed fixtures under
tests/fixtures and to time a PyTorch peer for the benchmark. It runs with
Debian's Python (/usr/bin/python3: torch + numpy); it deliberately imports
neither `transformers` nor `safetensors`.

The model is a faithful, minimal rewrite of Hugging Face
`transformers.models.vit_mae.modeling_vit_mae.ViTMAEForPreTraining`
(eager attention, no dropout, no interpolate_pos_encoding), with exactly HF's
parameter names, so a state_dict / model.safetensors written here or by the C
program loads into HF code and back. One intentional detail: HF computes the
attention softmax with dtype=float32 and casts back; we compute it in the
input dtype. For float32 that is the same thing; for the float64 fixtures it
keeps the reference exact instead of rounding the probabilities to float32.

Fixtures (tests/fixtures/twin_pix, twin_normpix): config.json, model.safetensors
(HF init, F32, HF names incl. both position embeddings; twin_pix also F16 and
BF16 copies) and expected.safetensors: pixel_values, noise, loss, logits, mask,
ids_restore, grad.<param> of the first step, step_losses, step_grad_norms and
after.<param> after `steps` AdamW steps with clipping; the hyper-parameters
are in __metadata__. All computed in float64 and stored as F32. The gradient
of every attention key bias is identically zero (softmax is shift invariant);
the fixtures store that exact zero rather than float64 roundoff, so their
bytes do not depend on the BLAS build. Generation is single-threaded and
deterministic: rerunning gives the same bytes.

Sub-commands
  fixtures --out tests/fixtures     write the twin_pix and twin_normpix cases
  check DIR [--image-npy X.npy | --pixels P.npy] [--noise N.npy]
            [--dump-logits OUT.npy] load DIR/config.json + DIR/model.safetensors
                                    (strict) and print loss=
  bench --config small --batch 32 --steps 3 --threads 2
                                    fp32 training-step throughput: images_per_s=
  bench-infer --config base --passes 10 --threads 2
                                    one image as a batch of `passes`: seconds=
  selftest                          validate the twin (manual attention, numpy
                                    reference forward, gradcheck, masking,
                                    AdamW formula)
  heads --out tests/fixtures/heads  the masked multi-head loss (src/adapt/heads.c)
                                    on fixed batches: layouts, logits, targets,
                                    known-masks, loss and d(loss)/d(logits),
                                    float64, as heads.json
"""
import os
import sys


def _cpu_has_avx512():
    try:
        with open("/proc/cpuinfo") as f:
            return " avx512f" in f.read()
    except OSError:
        return False


# The benchmark environment must be in place before torch (OpenBLAS, OpenMP)
# is loaded; explicit settings in the caller's environment win, except that
# OpenBLAS's SkylakeX kernels are AVX-512 and die with SIGILL on a CPU
# without it (e.g. AVX2-only EPYC), so there they are never forced. The torch
# peer is only meaningful with an optimised BLAS behind Debian's libblas.so.3
# (apt-get install libopenblas0-openmp); with the reference libblas3 alone
# it is one to two orders of magnitude slower.
if len(sys.argv) > 1 and sys.argv[1] in ("bench", "bench-infer"):
    os.environ.setdefault("OMP_PROC_BIND", "true")
    os.environ.setdefault("OMP_PLACES", "cores")
    if _cpu_has_avx512():
        os.environ.setdefault("OPENBLAS_CORETYPE", "SkylakeX")
    elif os.environ.get("OPENBLAS_CORETYPE", "").lower() in ("skylakex", "cooperlake", "sapphirerapids"):
        print("mae_twin: ignoring OPENBLAS_CORETYPE=%s: this CPU has no AVX-512" % os.environ["OPENBLAS_CORETYPE"],
              file=sys.stderr)
        del os.environ["OPENBLAS_CORETYPE"]

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

# --------------------------------------------------------------------------
# Configuration (HF ViTMAEConfig defaults)
# --------------------------------------------------------------------------

DEFAULTS = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "image_size": 224,
    "patch_size": 16,
    "num_channels": 3,
    "qkv_bias": True,
    "decoder_num_attention_heads": 16,
    "decoder_hidden_size": 512,
    "decoder_num_hidden_layers": 8,
    "decoder_intermediate_size": 2048,
    "mask_ratio": 0.75,
    "norm_pix_loss": False,
}


class Config:
    """HF-style config: DEFAULTS overridden by a config.json dict."""

    def __init__(self, d=None, **kw):
        merged = dict(DEFAULTS)
        merged.update(d or {})
        merged.update(kw)
        self.__dict__.update(merged)
        if self.hidden_act != "gelu":
            raise ValueError("only hidden_act 'gelu' (exact erf) is supported, got %r" % self.hidden_act)
        if self.hidden_dropout_prob or self.attention_probs_dropout_prob:
            raise ValueError("dropout is not supported by the twin")

    def to_json_dict(self):
        d = {k: getattr(self, k) for k in DEFAULTS}
        d["model_type"] = "vit_mae"
        d["architectures"] = ["ViTMAEForPreTraining"]
        return d

    def layer_view(self, hidden, heads, inter):
        c = Config(self.to_json_dict())
        c.hidden_size, c.num_attention_heads, c.intermediate_size = hidden, heads, inter
        return c


# --------------------------------------------------------------------------
# Fixed 2-D sin-cos position embeddings (numpy, exactly as HF)
# --------------------------------------------------------------------------


def get_1d_sincos_pos_embed_from_grid(embed_dim, pos):
    omega = np.arange(embed_dim // 2, dtype=float)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000**omega
    pos = pos.reshape(-1)
    out = np.einsum("m,d->md", pos, omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def get_2d_sincos_pos_embed(embed_dim, grid_size, add_cls_token=False):
    if embed_dim % 4 != 0:
        raise ValueError("embed_dim must be a multiple of 4")
    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.meshgrid(grid_w, grid_h)  # here w goes first
    grid = np.stack(grid, axis=0).reshape([2, 1, grid_size, grid_size])
    emb_h = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[0])
    emb_w = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[1])
    emb = np.concatenate([emb_h, emb_w], axis=1)
    if add_cls_token:
        emb = np.concatenate([np.zeros([1, embed_dim]), emb], axis=0)
    return emb


# --------------------------------------------------------------------------
# The model (module and attribute names are HF's: they make the state_dict)
# --------------------------------------------------------------------------


class ViTMAEPatchEmbeddings(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.image_size = config.image_size
        self.patch_size = config.patch_size
        self.num_channels = config.num_channels
        self.num_patches = (config.image_size // config.patch_size) ** 2
        self.projection = nn.Conv2d(config.num_channels, config.hidden_size,
                                    kernel_size=config.patch_size, stride=config.patch_size)

    def forward(self, pixel_values):
        _, c, h, w = pixel_values.shape
        if c != self.num_channels or h != self.image_size or w != self.image_size:
            raise ValueError("input %s does not match the model (%d x %d x %d)"
                             % (tuple(pixel_values.shape), self.num_channels, self.image_size, self.image_size))
        return self.projection(pixel_values).flatten(2).transpose(1, 2)


class ViTMAEEmbeddings(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.patch_embeddings = ViTMAEPatchEmbeddings(config)
        self.num_patches = self.patch_embeddings.num_patches
        self.position_embeddings = nn.Parameter(
            torch.zeros(1, self.num_patches + 1, config.hidden_size), requires_grad=False)
        self.config = config

    def initialize_weights(self):
        pos = get_2d_sincos_pos_embed(self.position_embeddings.shape[-1], int(self.num_patches**0.5),
                                      add_cls_token=True)
        self.position_embeddings.data.copy_(torch.from_numpy(pos).float().unsqueeze(0))
        w = self.patch_embeddings.projection.weight.data
        torch.nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
        torch.nn.init.normal_(self.cls_token, std=self.config.initializer_range)

    def random_masking(self, sequence, noise=None):
        batch_size, seq_length, dim = sequence.shape
        len_keep = int(seq_length * (1 - self.config.mask_ratio))
        if noise is None:
            noise = torch.rand(batch_size, seq_length, device=sequence.device)
        ids_shuffle = torch.argsort(noise, dim=1)  # ascend: small is keep, large is remove
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        sequence_unmasked = torch.gather(sequence, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, dim))
        mask = torch.ones([batch_size, seq_length], device=sequence.device, dtype=sequence.dtype)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, dim=1, index=ids_restore)
        return sequence_unmasked, mask, ids_restore

    def forward(self, pixel_values, noise=None):
        embeddings = self.patch_embeddings(pixel_values)
        embeddings = embeddings + self.position_embeddings[:, 1:, :]
        embeddings, mask, ids_restore = self.random_masking(embeddings, noise)
        cls_token = self.cls_token + self.position_embeddings[:, :1, :]
        cls_tokens = cls_token.expand(embeddings.shape[0], -1, -1)
        return torch.cat((cls_tokens, embeddings), dim=1), mask, ids_restore


class ViTMAESelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        if config.hidden_size % config.num_attention_heads:
            raise ValueError("hidden size %d is not a multiple of the number of heads %d"
                             % (config.hidden_size, config.num_attention_heads))
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.scaling = self.attention_head_size**-0.5
        self.query = nn.Linear(config.hidden_size, self.all_head_size, bias=config.qkv_bias)
        self.key = nn.Linear(config.hidden_size, self.all_head_size, bias=config.qkv_bias)
        self.value = nn.Linear(config.hidden_size, self.all_head_size, bias=config.qkv_bias)

    def forward(self, hidden_states):
        new_shape = hidden_states.shape[0], -1, self.num_attention_heads, self.attention_head_size
        key = self.key(hidden_states).view(*new_shape).transpose(1, 2)
        value = self.value(hidden_states).view(*new_shape).transpose(1, 2)
        query = self.query(hidden_states).view(*new_shape).transpose(1, 2)
        attn = torch.matmul(query, key.transpose(-1, -2)) * self.scaling
        attn = F.softmax(attn, dim=-1)  # HF: dtype=float32 then cast back (see header)
        ctx = torch.matmul(attn, value).transpose(1, 2).contiguous()
        return ctx.reshape(ctx.shape[:-2] + (self.all_head_size,))


class ViTMAESelfOutput(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states):
        return self.dense(hidden_states)


class ViTMAEAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.attention = ViTMAESelfAttention(config)
        self.output = ViTMAESelfOutput(config)

    def forward(self, hidden_states):
        return self.output(self.attention(hidden_states))


class ViTMAEIntermediate(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, hidden_states):
        return F.gelu(self.dense(hidden_states))  # exact (erf) GELU, HF "gelu"


class ViTMAEOutput(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states, input_tensor):
        return self.dense(hidden_states) + input_tensor


class ViTMAELayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.attention = ViTMAEAttention(config)
        self.intermediate = ViTMAEIntermediate(config)
        self.output = ViTMAEOutput(config)
        self.layernorm_before = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.layernorm_after = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states):
        hidden_states = self.attention(self.layernorm_before(hidden_states)) + hidden_states
        layer_output = self.intermediate(self.layernorm_after(hidden_states))
        return self.output(layer_output, hidden_states)


class ViTMAEEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layer = nn.ModuleList([ViTMAELayer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, hidden_states):
        for layer in self.layer:
            hidden_states = layer(hidden_states)
        return hidden_states


class ViTMAEModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.embeddings = ViTMAEEmbeddings(config)
        self.encoder = ViTMAEEncoder(config)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, pixel_values, noise=None):
        x, mask, ids_restore = self.embeddings(pixel_values, noise)
        return self.layernorm(self.encoder(x)), mask, ids_restore


class ViTMAEDecoder(nn.Module):
    def __init__(self, config, num_patches):
        super().__init__()
        self.decoder_embed = nn.Linear(config.hidden_size, config.decoder_hidden_size, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, config.decoder_hidden_size))
        self.decoder_pos_embed = nn.Parameter(
            torch.zeros(1, num_patches + 1, config.decoder_hidden_size), requires_grad=False)
        dcfg = config.layer_view(config.decoder_hidden_size, config.decoder_num_attention_heads,
                                 config.decoder_intermediate_size)
        self.decoder_layers = nn.ModuleList([ViTMAELayer(dcfg) for _ in range(config.decoder_num_hidden_layers)])
        self.decoder_norm = nn.LayerNorm(config.decoder_hidden_size, eps=config.layer_norm_eps)
        self.decoder_pred = nn.Linear(config.decoder_hidden_size, config.patch_size**2 * config.num_channels,
                                      bias=True)
        self.num_patches = num_patches
        self.config = config

    def initialize_weights(self):
        pos = get_2d_sincos_pos_embed(self.decoder_pos_embed.shape[-1], int(self.num_patches**0.5),
                                      add_cls_token=True)
        self.decoder_pos_embed.data.copy_(torch.from_numpy(pos).float().unsqueeze(0))
        torch.nn.init.normal_(self.mask_token, std=self.config.initializer_range)

    def forward(self, hidden_states, ids_restore):
        x = self.decoder_embed(hidden_states)
        mask_tokens = self.mask_token.repeat(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], 1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)  # no cls token
        x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))  # unshuffle
        x = torch.cat([x[:, :1, :], x_], dim=1)  # append cls token
        hidden_states = x + self.decoder_pos_embed
        for layer in self.decoder_layers:
            hidden_states = layer(hidden_states)
        logits = self.decoder_pred(self.decoder_norm(hidden_states))
        return logits[:, 1:, :]  # remove cls token


class ViTMAEForPreTraining(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.vit = ViTMAEModel(config)
        self.decoder = ViTMAEDecoder(config, num_patches=self.vit.embeddings.num_patches)
        self.apply(self._init_weights)  # post-order, like HF post_init()

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            module.weight.data.normal_(mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        elif isinstance(module, (ViTMAEEmbeddings, ViTMAEDecoder)):
            module.initialize_weights()

    def patchify(self, pixel_values):
        p, c = self.config.patch_size, self.config.num_channels
        n, _, h, w = pixel_values.shape
        x = pixel_values.reshape(n, c, h // p, p, w // p, p)
        x = torch.einsum("nchpwq->nhwpqc", x)
        return x.reshape(n, (h // p) * (w // p), p * p * c)

    def forward_loss(self, pixel_values, pred, mask):
        target = self.patchify(pixel_values)
        if self.config.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)  # unbiased
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        loss = ((pred - target) ** 2).mean(dim=-1)  # [N, L], mean loss per patch
        return (loss * mask).sum() / mask.sum()  # mean loss on removed patches

    def forward(self, pixel_values, noise=None):
        latent, mask, ids_restore = self.vit(pixel_values, noise)
        logits = self.decoder(latent, ids_restore)
        loss = self.forward_loss(pixel_values, logits, mask)
        return loss, logits, mask, ids_restore


def is_fixed(name):
    return name.endswith("position_embeddings") or name.endswith("decoder_pos_embed")


def no_decay(name, param):
    """MAE/timm rule: weight decay only on >=2-D tensors that are not tokens/positions."""
    return param.ndim < 2 or name.endswith("cls_token") or name.endswith("mask_token") or is_fixed(name)


def param_groups(model, weight_decay):
    decay, other = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (other if no_decay(name, p) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}]


# --------------------------------------------------------------------------
# safetensors (pure Python)
# --------------------------------------------------------------------------

_ST_NUMPY = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4", "U8": "u1"}


def f32_to_bf16_bits(a):
    """Upper 16 bits of the float32, rounded to nearest even (NaN stays NaN)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    nan = np.isnan(np.asarray(a, dtype=np.float32))
    r = np.where(nan, (u >> 16) | 0x40, r)
    return r.astype(np.uint16)


def bf16_bits_to_f32(b):
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def save_safetensors(path, tensors, dtype="F32", metadata=None):
    """tensors: {name: array}; every tensor is written as `dtype` (F32, F16 or BF16)."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name], dtype=np.float32)
        if dtype == "F32":
            raw = a.astype("<f4").tobytes()
        elif dtype == "F16":
            raw = a.astype("<f2").tobytes()
        elif dtype == "BF16":
            raw = f32_to_bf16_bits(a).astype("<u2").tobytes()
        else:
            raise ValueError("unsupported dtype " + dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata is not None:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hjson = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(hjson).to_bytes(8, "little"))
        f.write(hjson)
        for raw in blobs:
            f.write(raw)


def load_safetensors(path):
    """Returns ({name: float32 ndarray}, metadata dict)."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError(path + ": too short")
    n = int.from_bytes(buf[:8], "little")
    if n > len(buf) - 8:
        raise ValueError(path + ": header length past end of file")
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    data = memoryview(buf)[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        dt, shape, (b, e) = info["dtype"], info["shape"], info["data_offsets"]
        if dt not in _ST_NUMPY:
            raise ValueError("%s: tensor %s has unsupported dtype %s" % (path, name, dt))
        if not 0 <= b <= e <= len(data):
            raise ValueError("%s: tensor %s has bad offsets" % (path, name))
        a = np.frombuffer(data[b:e], dtype=_ST_NUMPY[dt])
        if a.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError("%s: tensor %s size does not match its shape" % (path, name))
        a = bf16_bits_to_f32(a) if dt == "BF16" else a.astype(np.float32)
        out[name] = a.reshape(shape)
    return out, meta


def state_dict_numpy(model):
    return {k: v.detach().to(torch.float32).cpu().numpy().copy() for k, v in model.state_dict().items()}


def load_model_dir(d, dtype=torch.float32):
    with open(os.path.join(d, "config.json")) as f:
        cfg = Config(json.load(f))
    model = ViTMAEForPreTraining(cfg)
    tensors, _ = load_safetensors(os.path.join(d, "model.safetensors"))
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, strict=True)
    return model.to(dtype), cfg


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------

FIXTURE_CFG = {
    "image_size": 32, "patch_size": 8, "num_channels": 3,
    "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
    "decoder_hidden_size": 32, "decoder_num_hidden_layers": 1, "decoder_num_attention_heads": 4,
    "decoder_intermediate_size": 64, "mask_ratio": 0.75, "qkv_bias": True,
}
OPT = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.05, "steps": 3}
CASES = [  # name, norm_pix_loss, layer_norm_eps, seed, extra dtypes
    ("twin_pix", False, 1e-12, 1234, ("F16", "BF16")),
    ("twin_normpix", True, 1e-6, 5678, ()),
]


def global_grad_norm(params):
    return torch.norm(torch.stack([torch.norm(p.grad.detach(), 2.0) for p in params if p.grad is not None]), 2.0)


def exact_zero_key_bias_grads(model):
    """The key bias adds q.b_k to every score of a query row, which softmax ignores: its
    gradient is identically zero. Float64 leaves ~1e-18 of roundoff whose digits depend on
    the BLAS build; write the exact value so the fixtures are bitwise reproducible."""
    for n, p in model.named_parameters():
        if n.endswith("attention.attention.key.bias") and p.grad is not None:
            if p.grad.abs().max().item() > 1e-12:
                raise RuntimeError("%s: gradient %.3g is not roundoff" % (n, p.grad.abs().max().item()))
            p.grad.zero_()


def run_reference(model, pixel_values, noise, steps, max_grad_norm=None):
    """Float64 training run as described in the fixture spec. Returns a dict of arrays + max_grad_norm."""
    model.double().train()
    px, nz = pixel_values.double(), noise.double()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW(param_groups(model, OPT["weight_decay"]), lr=OPT["lr"],
                            betas=(OPT["beta1"], OPT["beta2"]), eps=OPT["eps"], foreach=False)
    res = {"step_losses": [], "step_grad_norms": []}
    for t in range(steps):
        opt.zero_grad(set_to_none=True)
        loss, logits, mask, ids_restore = model(px, nz)
        loss.backward()
        exact_zero_key_bias_grads(model)
        norm = global_grad_norm([p for _, p in trainable])
        if t == 0:
            res.update(loss=loss.detach().reshape(1), logits=logits.detach(), mask=mask.detach(),
                       ids_restore=ids_restore.detach().double())
            res.update({"grad." + n: p.grad.detach().clone() for n, p in trainable})
            if max_grad_norm is None:  # half the first norm (6 significant digits) so clipping happens
                max_grad_norm = float("%.6g" % (0.5 * norm.item()))
        res["step_losses"].append(loss.item())
        res["step_grad_norms"].append(norm.item())
        torch.nn.utils.clip_grad_norm_([p for _, p in trainable], max_grad_norm)
        opt.step()
    res.update({"after." + n: p.detach().clone() for n, p in model.named_parameters()})
    out = {k: (v.cpu().numpy() if torch.is_tensor(v) else np.asarray(v, dtype=np.float64)) for k, v in res.items()}
    return out, max_grad_norm


def make_inputs(seed, cfg, batch=2):
    g = torch.Generator().manual_seed(seed)
    n = (cfg.image_size // cfg.patch_size) ** 2
    pixel_values = torch.randn(batch, cfg.num_channels, cfg.image_size, cfg.image_size, generator=g)
    noise = torch.rand(batch, n, generator=g)
    return pixel_values, noise  # float32: exactly what the fixture stores


def write_case(out_dir, name, norm_pix, eps, seed, extra_dtypes):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    cfg = Config(FIXTURE_CFG, norm_pix_loss=norm_pix, layer_norm_eps=eps)
    torch.manual_seed(seed)
    model = ViTMAEForPreTraining(cfg)
    params = state_dict_numpy(model)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg.to_json_dict(), f, indent=2, sort_keys=True)
        f.write("\n")
    save_safetensors(os.path.join(d, "model.safetensors"), params, "F32", {"format": "pt"})
    for dt in extra_dtypes:
        save_safetensors(os.path.join(d, "model_%s.safetensors" % dt.lower()), params, dt, {"format": "pt"})

    pixel_values, noise = make_inputs(seed + 1, cfg)
    if len(set(noise.flatten().tolist())) != noise.numel():
        raise RuntimeError("tied noise values: pick another seed")
    res, max_norm = run_reference(model, pixel_values, noise, OPT["steps"])
    res["pixel_values"] = pixel_values.numpy()
    res["noise"] = noise.numpy()
    meta = {k: repr(v) for k, v in OPT.items()}
    meta.update(max_grad_norm="%.6g" % max_norm, clip_eps="1e-06", seed=str(seed),
                norm_pix_loss=str(norm_pix).lower(), precision="float64 reference stored as F32",
                key_bias_grad="exactly 0 (softmax shift invariance); roundoff zeroed",
                weight_decay_on="ndim>=2 except cls_token, mask_token, position embeddings",
                optimizer="torch.optim.AdamW (decoupled decay: p*=1-lr*wd; bias-corrected Adam)",
                clip="torch.nn.utils.clip_grad_norm_: g*=min(1, max_grad_norm/(total_norm+clip_eps))")
    save_safetensors(os.path.join(d, "expected.safetensors"), res, "F32", meta)
    return res


def cmd_fixtures(args):
    torch.set_num_threads(1)  # fixed summation order: same bytes on rerun
    torch.use_deterministic_algorithms(True)
    for name, norm_pix, eps, seed, extra in CASES:
        res = write_case(args.out, name, norm_pix, eps, seed, extra)
        d = os.path.join(args.out, name)
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print("%s: loss=%.9g step_losses=%s grad_norms=%s bytes=%d"
              % (name, res["loss"][0], ["%.9g" % x for x in res["step_losses"]],
                 ["%.6g" % x for x in res["step_grad_norms"]], size))


# --------------------------------------------------------------------------
# check: load a checkpoint written by the C program
# --------------------------------------------------------------------------


def cmd_check(args):
    torch.set_num_threads(args.threads)
    dtype = torch.float64 if args.float64 else torch.float32
    model, cfg = load_model_dir(args.dir, dtype)
    model.eval()
    n = (cfg.image_size // cfg.patch_size) ** 2
    g = torch.Generator().manual_seed(args.seed)
    if args.pixels:
        px = torch.from_numpy(np.load(args.pixels).astype(np.float32))
        if px.ndim == 3:
            px = px.unsqueeze(0)
    elif args.image_npy:
        im = torch.from_numpy(np.load(args.image_npy).astype(np.float32))
        if im.ndim == 2:
            im = im.unsqueeze(0)
        if im.ndim == 3 and im.shape[0] == 1 and cfg.num_channels != 1:
            im = im.repeat(cfg.num_channels, 1, 1)
        px = im.reshape(-1, *im.shape[-3:]) if im.ndim == 4 else im.unsqueeze(0)
    else:
        px = torch.randn(1, cfg.num_channels, cfg.image_size, cfg.image_size, generator=g)
    if args.noise:
        noise = torch.from_numpy(np.load(args.noise).astype(np.float32)).reshape(-1, n)
        if noise.shape[0] == 1 and px.shape[0] > 1:
            noise = noise.repeat(px.shape[0], 1)
    else:
        noise = torch.rand(px.shape[0], n, generator=g)
    with torch.no_grad():
        loss, logits, mask, _ = model(px.to(dtype), noise.to(dtype))
    if args.dump_logits:
        out = logits.to(torch.float32).numpy()
        np.save(args.dump_logits, out[0] if out.shape[0] == 1 else out)
    print("params=%d masked=%d" % (sum(p.numel() for p in model.parameters()), int(mask.sum().item())))
    print("loss=%.9g" % loss.item())


class ViTForImageClassification(nn.Module):
    """HF ViTForImageClassification: ViTModel(add_pooling_layer=False) and a
    Linear classifier on the final-LayerNorm CLS token. Its ViT embeddings
    equal ViTMAE's with nothing masked (CLS + pos[0], patches + pos[1:]), so
    the MAE twin's modules and names serve (vit.*, classifier.*)."""

    def __init__(self, config, num_labels):
        super().__init__()
        config.mask_ratio = 0.0
        self.vit = ViTMAEModel(config)
        self.classifier = nn.Linear(config.hidden_size, num_labels)

    def forward(self, pixel_values):
        n = self.vit.embeddings.num_patches
        order = torch.arange(n, dtype=pixel_values.dtype).expand(pixel_values.shape[0], n)  # keep patch order
        seq, _, _ = self.vit(pixel_values, order)
        return self.classifier(seq[:, 0, :])


def cmd_check_classifier(args):
    """Load a skelex classifier directory strictly and print its outputs for
    8-bit images at the model's size, preprocessed as skelex does (min-max to
    8 bits, /255, grey to 3 channels, ImageNet mean/std): image, then
    probabilities (or the value)."""
    from PIL import Image
    with open(os.path.join(args.dir, "config.json")) as f:
        raw = json.load(f)
    assert raw.get("model_type") == "vit" and raw["architectures"] == ["ViTForImageClassification"], raw.get("model_type")
    cfg = Config({k: v for k, v in raw.items() if k in DEFAULTS})
    num_labels = len(raw["id2label"])
    model = ViTForImageClassification(cfg, num_labels)
    tensors, _ = load_safetensors(os.path.join(args.dir, "model.safetensors"))
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, strict=True)
    model.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    problem = raw.get("problem_type")
    for path in args.images:
        g = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
        assert g.shape == (cfg.image_size, cfg.image_size), "give images already at the model size (skelex preprocess)"
        lo, hi = g.min(), g.max()  # skelex's per-image min-max to 8 bits (a no-op on a full-range image)
        g = np.rint((g - lo) / (hi - lo) * np.float32(255)).astype(np.float32) if hi > lo else np.zeros_like(g)
        x = ((torch.from_numpy(g / 255.0).expand(3, -1, -1) - mean) / std).unsqueeze(0)
        with torch.no_grad():
            z = model(x.float())[0]
        if problem == "regression":
            out = z
        elif problem == "multi_label_classification":
            p = torch.sigmoid(z)
            out = torch.cat([1 - p, p])
        else:
            out = torch.softmax(z, 0)
        print(path + "," + ",".join("%.9g" % v for v in out.tolist()))


# --------------------------------------------------------------------------
# benchmark peers
# --------------------------------------------------------------------------

PRESETS = {  # hidden, layers, heads, mlp, patch
    "tiny": (192, 12, 3, 768, 16),
    "small": (384, 12, 6, 1536, 16),
    "base": (768, 12, 12, 3072, 16),
    "large": (1024, 24, 16, 4096, 16),
    "huge": (1280, 32, 16, 5120, 14),
}


def preset_config(name):
    h, nl, nh, mlp, p = PRESETS[name]
    return Config(hidden_size=h, num_hidden_layers=nl, num_attention_heads=nh, intermediate_size=mlp,
                  image_size=224, patch_size=p)  # decoder: MAE defaults 512/8/16/2048


def _autocast(args):
    """torch.autocast("cpu", bfloat16) with --bf16 (oneDNN's bf16 kernels: AMX or
    AVX512-BF16 where the CPU has them, emulated or slow elsewhere), else a no-op."""
    if getattr(args, "bf16", False):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cmd_bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = preset_config(args.config)
    model = ViTMAEForPreTraining(cfg).train()
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1.5e-4, betas=(0.9, 0.95))
    px = torch.randn(args.batch, 3, cfg.image_size, cfg.image_size)

    def step():
        opt.zero_grad(set_to_none=True)
        with _autocast(args):  # fp32 master weights and AdamW, bf16 products under --bf16
            loss = model(px)[0]  # random masking noise each step
        loss.backward()
        opt.step()
        return loss.item()

    step()  # warm-up, not timed
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    dt = sum(times)
    print("config=%s batch=%d steps=%d threads=%d seconds=%.3f" % (args.config, args.batch, args.steps,
                                                                   args.threads, dt))
    print("precision=%s" % ("bf16" if args.bf16 else "fp32"))
    print("images_per_s=%.4f" % (args.batch * args.steps / dt))
    print("step_seconds=" + ",".join("%.4f" % t for t in times))


def cmd_bench_infer(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = preset_config(args.config)
    model = ViTMAEForPreTraining(cfg).eval()
    n = (cfg.image_size // cfg.patch_size) ** 2
    img = torch.randn(1, 3, cfg.image_size, cfg.image_size)
    px = img.repeat(args.passes, 1, 1, 1)
    with torch.no_grad(), _autocast(args):
        for _ in range(args.warmup):
            model(px, torch.rand(args.passes, n))
        t0 = time.perf_counter()
        model(px, torch.rand(args.passes, n))
        dt = time.perf_counter() - t0
    print("config=%s passes=%d threads=%d" % (args.config, args.passes, args.threads))
    print("precision=%s" % ("bf16" if args.bf16 else "fp32"))
    print("seconds=%.4f" % dt)


# --------------------------------------------------------------------------
# selftest: validation of the twin itself
# --------------------------------------------------------------------------


def _np_ln(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


_erf = np.vectorize(math.erf)


def _np_layer(x, sd, pre, heads, eps):
    """One ViTMAELayer written out by hand, head by head (float64 numpy)."""
    def lin(v, name):
        return v @ sd[pre + name + ".weight"].T + sd[pre + name + ".bias"]
    h = _np_ln(x, sd[pre + "layernorm_before.weight"], sd[pre + "layernorm_before.bias"], eps)
    q = lin(h, "attention.attention.query")
    k = lin(h, "attention.attention.key")
    v = lin(h, "attention.attention.value")
    B, T, D = x.shape
    hd = D // heads
    ctx = np.zeros_like(x)
    for b in range(B):
        for i in range(heads):
            s = slice(i * hd, (i + 1) * hd)
            sc = q[b, :, s] @ k[b, :, s].T / math.sqrt(hd)
            sc = np.exp(sc - sc.max(-1, keepdims=True))
            ctx[b, :, s] = (sc / sc.sum(-1, keepdims=True)) @ v[b, :, s]
    x = lin(ctx, "attention.output.dense") + x
    h = _np_ln(x, sd[pre + "layernorm_after.weight"], sd[pre + "layernorm_after.bias"], eps)
    h = lin(h, "intermediate.dense")
    h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)))
    return lin(h, "output.dense") + x


def np_reference_forward(sd, cfg, px, noise):
    """Independent float64 numpy forward (no gather/argsort-of-argsort, explicit loops)."""
    P, C = cfg.patch_size, cfg.num_channels
    B, _, H, W = px.shape
    h, w = H // P, W // P
    L = h * w
    xp = px.reshape(B, C, h, P, w, P).transpose(0, 2, 4, 1, 3, 5).reshape(B, L, C * P * P)
    wc = sd["vit.embeddings.patch_embeddings.projection.weight"]
    emb = xp @ wc.reshape(wc.shape[0], -1).T + sd["vit.embeddings.patch_embeddings.projection.bias"]
    pos = sd["vit.embeddings.position_embeddings"][0]
    emb = emb + pos[1:]
    keep = int(L * (1 - cfg.mask_ratio))
    mask = np.zeros((B, L))
    kept = []
    for b in range(B):
        rank = np.array([(noise[b] < noise[b, j]).sum() for j in range(L)])  # position in ascending sort
        mask[b] = rank >= keep
        kept.append([int(np.where(rank == r)[0][0]) for r in range(keep)])  # patches in ascending noise order
    x = np.stack([np.concatenate([sd["vit.embeddings.cls_token"][0] + pos[:1], emb[b, kept[b]]]) for b in range(B)])
    for i in range(cfg.num_hidden_layers):
        x = _np_layer(x, sd, "vit.encoder.layer.%d." % i, cfg.num_attention_heads, cfg.layer_norm_eps)
    x = _np_ln(x, sd["vit.layernorm.weight"], sd["vit.layernorm.bias"], cfg.layer_norm_eps)
    y = x @ sd["decoder.decoder_embed.weight"].T + sd["decoder.decoder_embed.bias"]
    Dd = y.shape[-1]
    z = np.zeros((B, L + 1, Dd))
    for b in range(B):
        z[b, 0] = y[b, 0]
        for j in range(L):
            z[b, 1 + j] = y[b, 1 + kept[b].index(j)] if j in kept[b] else sd["decoder.mask_token"][0, 0]
    z = z + sd["decoder.decoder_pos_embed"][0]
    for i in range(cfg.decoder_num_hidden_layers):
        z = _np_layer(z, sd, "decoder.decoder_layers.%d." % i, cfg.decoder_num_attention_heads, cfg.layer_norm_eps)
    z = _np_ln(z, sd["decoder.decoder_norm.weight"], sd["decoder.decoder_norm.bias"], cfg.layer_norm_eps)
    logits = (z @ sd["decoder.decoder_pred.weight"].T + sd["decoder.decoder_pred.bias"])[:, 1:]
    target = px.reshape(B, C, h, P, w, P).transpose(0, 2, 4, 3, 5, 1).reshape(B, L, P * P * C)
    if cfg.norm_pix_loss:
        target = (target - target.mean(-1, keepdims=True)) / np.sqrt(target.var(-1, ddof=1, keepdims=True) + 1e-6)
    per = ((logits - target) ** 2).mean(-1)
    return (per * mask).sum() / mask.sum(), logits, mask


def _report(label, err, tol):
    ok = err <= tol
    print("%-58s max|diff|=%.3g  %s" % (label, err, "ok" if ok else "FAIL (tol %.1g)" % tol))
    return ok


def cmd_selftest(args):
    torch.set_num_threads(1)
    ok = True
    cfg = Config(FIXTURE_CFG, norm_pix_loss=True, layer_norm_eps=1e-6)

    # (a) one layer vs a hand-written computation
    torch.manual_seed(1)
    layer = ViTMAELayer(cfg).double()
    for p in layer.parameters():  # non-trivial LayerNorm affine and biases
        p.data.normal_(0, 0.3)
    x = torch.randn(2, 5, cfg.hidden_size, dtype=torch.float64)
    sd = {"L." + k: v.numpy() for k, v in layer.state_dict().items()}
    with torch.no_grad():
        ref = _np_layer(x.numpy(), sd, "L.", cfg.num_attention_heads, cfg.layer_norm_eps)
        ok &= _report("(a) ViTMAELayer vs manual numpy (per-head loops)", np.abs(layer(x).numpy() - ref).max(), 1e-12)

    # (a') whole model vs the independent numpy forward, both losses
    for norm_pix in (False, True):
        c = Config(FIXTURE_CFG, norm_pix_loss=norm_pix, layer_norm_eps=1e-6)
        torch.manual_seed(2)
        m = ViTMAEForPreTraining(c).double()
        with torch.no_grad():
            for n, p in m.named_parameters():
                if p.requires_grad:
                    p.add_(torch.randn_like(p) * 0.05)
        px, nz = make_inputs(3, c)
        with torch.no_grad():
            loss, logits, mask, ids_restore = m(px.double(), nz.double())
        sd = {k: v.numpy() for k, v in m.state_dict().items()}
        rl, rlog, rmask = np_reference_forward(sd, c, px.double().numpy(), nz.double().numpy())
        ok &= _report("(a') full model vs numpy reference, norm_pix=%s: logits" % norm_pix,
                      np.abs(logits.numpy() - rlog).max(), 1e-12)
        ok &= _report("     loss (%.9g)" % loss.item(), abs(loss.item() - rl), 1e-12)
        ok &= _report("     mask", np.abs(mask.numpy() - rmask).max(), 0)

    # (c) masking semantics
    c = Config(FIXTURE_CFG)
    L = (c.image_size // c.patch_size) ** 2
    keep = int(L * (1 - c.mask_ratio))
    torch.manual_seed(4)
    m = ViTMAEForPreTraining(c).double()
    px, nz = make_inputs(5, c, batch=4)
    with torch.no_grad():
        _, _, mask, ids_restore = m(px.double(), nz.double())
    good = True
    for b in range(4):
        order = sorted(range(L), key=lambda j: nz[b, j].item())
        inv = [order.index(j) for j in range(L)]
        good &= ids_restore[b].tolist() == inv
        good &= mask[b].tolist() == [1.0 if inv[j] >= keep else 0.0 for j in range(L)]
        good &= int(mask[b].sum().item()) == L - keep
    print("(c) ids_restore = inverse of argsort(noise); mask = rank>=len_keep; sum=%d/row  %s"
          % (L - keep, "ok" if good else "FAIL"))
    ok &= good
    # unshuffle: the decoder input token j is the kept token (if kept) or the mask token
    seen = {}
    hook = m.decoder.decoder_layers[0].register_forward_pre_hook(lambda mod, inp: seen.__setitem__("x", inp[0]))
    with torch.no_grad():
        latent, _, _ = m.vit(px.double(), nz.double())
        m.decoder(latent, ids_restore)
    hook.remove()
    y = m.decoder.decoder_embed(latent).detach()
    exp = torch.empty_like(seen["x"])
    for b in range(4):
        exp[b, 0] = y[b, 0]
        for j in range(L):
            r = ids_restore[b, j].item()
            exp[b, 1 + j] = y[b, 1 + r] if r < keep else m.decoder.mask_token[0, 0]
    exp += m.decoder.decoder_pos_embed[0]
    ok &= _report("(c) decoder unshuffle (gather by ids_restore) vs loop", (exp - seen["x"]).abs().max().item(), 0)

    # (b) gradcheck of every trainable parameter and the pixels on a tiny float64 model
    for norm_pix in (False, True):
        tc = Config(image_size=8, patch_size=4, num_channels=3, hidden_size=8, num_hidden_layers=1,
                    num_attention_heads=2, intermediate_size=16, decoder_hidden_size=8,
                    decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=16,
                    mask_ratio=0.5, norm_pix_loss=norm_pix, layer_norm_eps=1e-6)
        torch.manual_seed(6)
        tm = ViTMAEForPreTraining(tc).double()
        names = [n for n, p in tm.named_parameters() if p.requires_grad]
        fixed = {n: p for n, p in tm.named_parameters() if not p.requires_grad}
        px, nz = make_inputs(7, tc, batch=2)
        inputs = [tm.get_parameter(n).detach().clone().requires_grad_(True) for n in names]
        inputs = [t.add(torch.randn_like(t) * 0.1).detach().requires_grad_(True) for t in inputs]
        inputs.append(px.double().requires_grad_(True))

        def f(*ts):
            pd = dict(zip(names, ts[:-1]))
            pd.update(fixed)
            return torch.nn.utils.stateless.functional_call(tm, pd, (ts[-1], nz.double()))[0]

        passed = torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)
        print("(b) gradcheck, %d parameter tensors + pixels, norm_pix=%s  %s"
              % (len(names), norm_pix, "ok" if passed else "FAIL"))
        ok &= passed

    # (b') central differences on the fixture-sized model, a few entries of every parameter
    torch.manual_seed(8)
    m = ViTMAEForPreTraining(cfg).double()
    px, nz = make_inputs(9, cfg)
    px, nz = px.double(), nz.double()
    loss = m(px, nz)[0]
    loss.backward()
    worst, gen = 0.0, torch.Generator().manual_seed(10)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if not p.requires_grad:
                continue
            flat = p.view(-1)
            for idx in torch.randint(0, flat.numel(), (3,), generator=gen).tolist():
                old, hstep = flat[idx].item(), 1e-5
                flat[idx] = old + hstep
                lp = m(px, nz)[0].item()
                flat[idx] = old - hstep
                lm = m(px, nz)[0].item()
                flat[idx] = old
                fd, an = (lp - lm) / (2 * hstep), p.grad.view(-1)[idx].item()
                worst = max(worst, abs(fd - an) / max(1e-4, abs(an)))
    ok &= _report("(b') central differences, 3 entries x every param (rel)", worst, 1e-5)

    # AdamW + clipping: torch vs the documented formula, on the fixture recipe
    torch.manual_seed(11)
    m = ViTMAEForPreTraining(cfg)
    init = {n: p.detach().double().clone() for n, p in m.named_parameters()}
    px, nz = make_inputs(12, cfg)
    res, max_norm = run_reference(m, px, nz, OPT["steps"])
    m2 = ViTMAEForPreTraining(cfg).double()
    with torch.no_grad():
        for n, p in m2.named_parameters():
            p.copy_(init[n])
    state = {n: (torch.zeros_like(p), torch.zeros_like(p)) for n, p in m2.named_parameters() if p.requires_grad}
    lr, b1, b2, eps, wd = OPT["lr"], OPT["beta1"], OPT["beta2"], OPT["eps"], OPT["weight_decay"]
    for t in range(1, OPT["steps"] + 1):
        m2.zero_grad(set_to_none=True)
        m2(px.double(), nz.double())[0].backward()
        exact_zero_key_bias_grads(m2)
        tp = [(n, p) for n, p in m2.named_parameters() if p.requires_grad]
        total = math.sqrt(sum((p.grad.double() ** 2).sum().item() for _, p in tp))
        coef = min(1.0, max_norm / (total + 1e-6))
        with torch.no_grad():
            for n, p in tp:
                g = p.grad * coef
                mm, vv = state[n]
                p.mul_(1 - lr * (0.0 if no_decay(n, p) else wd))
                mm.mul_(b1).add_(g, alpha=1 - b1)
                vv.mul_(b2).addcmul_(g, g, value=1 - b2)
                mhat, vhat = mm / (1 - b1**t), vv / (1 - b2**t)
                p.sub_(lr * mhat / (vhat.sqrt() + eps))
    err = max(np.abs(res["after." + n] - p.detach().numpy()).max() for n, p in m2.named_parameters())
    ok &= _report("AdamW+clip (max_norm %.6g, norms %s) vs formula"
                  % (max_norm, ",".join("%.3g" % v for v in res["step_grad_norms"])), err, 1e-12)

    # safetensors round trip, BF16 rounding
    a = np.array([1.0, 1.00390625, 1.01171875, -3.14159265, 1e-40, 65504.0, 3e38], dtype=np.float32)
    bits = f32_to_bf16_bits(a)
    exp_bits = [0x3F80, 0x3F80, 0x3F82, 0xC049, 0x0001, 0x4780, 0x7F62]  # ties go to even
    good = bits.tolist() == exp_bits
    print("BF16 round-to-nearest-even on known values  %s" % ("ok" if good else "FAIL %s" % [hex(b) for b in bits]))
    ok &= good
    print("selftest: %s" % ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


# --------------------------------------------------------------------------
# heads: the masked multi-head loss of a grouped classifier head
# --------------------------------------------------------------------------


def multihead_loss(logits, targets, known, groups):
    """SKELEX's masked multi-head loss. logits, targets, known: (B, n_out)
    (known is 0/1); groups: [(kind, [output indices])]. One BCE-with-logits
    term over every known entry of the sigmoid outputs (mean over those
    entries) plus, per softmax group, the cross-entropy mean over the rows
    where every output of the group is known. Empty terms add 0."""
    loss = logits.new_zeros(())
    sig = [j for kind, idx in groups if kind == "sigmoid" for j in idx]
    if sig:
        m = known[:, sig]
        if m.sum() > 0:
            bce = F.binary_cross_entropy_with_logits(logits[:, sig], targets[:, sig], reduction="none")
            loss = loss + (bce * m).sum() / m.sum()
    for kind, idx in groups:
        if kind != "softmax":
            continue
        rows = known[:, idx].min(dim=1).values > 0
        if rows.any():
            logp = F.log_softmax(logits[rows][:, idx], dim=1)
            loss = loss - (targets[rows][:, idx] * logp).sum(dim=1).mean()
    return loss


def _heads_case(name, outputs, groups, seed, B, scale):
    rng = np.random.default_rng(seed)
    n = len(outputs)
    gidx = [(g["kind"], [outputs.index(o) for o in g["outputs"]]) for g in groups]
    # logits exactly representable in float32 (the C side takes float logits)
    z = (rng.standard_normal((B, n)) * scale).astype(np.float32).astype(np.float64)
    z[0, 0], z[1, 0] = 30.0, -30.0     # saturated sigmoids
    t = np.zeros((B, n))
    k = np.ones((B, n))
    for b in range(B):
        for kind, idx in gidx:
            if kind == "sigmoid":
                t[b, idx] = rng.integers(0, 2, len(idx))
            else:
                t[b, idx[rng.integers(0, len(idx))]] = 1.0
    t[2, gidx[0][1][0]] = 0.25         # a soft sigmoid target
    soft = next((idx for kind, idx in gidx if kind == "softmax"), None)
    if soft:
        t[3, soft] = 0.0
        t[3, soft[0]], t[3, soft[1]] = 0.5, 0.5     # a soft softmax target
    # row 0 all known; row 1 nothing known; rows 2.. drop whole groups and single entries
    k[1, :] = 0
    for b in range(2, B):
        for kind, idx in gidx:
            r = rng.random()
            if r < 0.3:
                k[b, idx] = 0                     # the whole group masked
            elif r < 0.45:
                k[b, idx[rng.integers(0, len(idx))]] = 0   # one entry masked
    k[2, gidx[0][1]] = 0                          # row 2: the first group masked whole
    k[3, gidx[-1][1][-1]] = 0                     # row 3: one entry of the last group masked
    zt = torch.tensor(z, requires_grad=True)
    loss = multihead_loss(zt, torch.tensor(t), torch.tensor(k), gidx)
    loss.backward()
    return {"name": name, "outputs": outputs, "groups": groups, "B": B,
            "logits": z.ravel().tolist(), "targets": t.ravel().tolist(), "known": k.astype(int).ravel().tolist(),
            "loss": float(loss), "grad": zt.grad.numpy().ravel().tolist()}


def cmd_heads(args):
    torch.set_num_threads(1)
    small_out = ["o%d" % j for j in range(11)]
    small = [{"name": "abnormal", "kind": "sigmoid", "outputs": ["o0"]},
             {"name": "tumour", "kind": "softmax", "outputs": ["o1", "o2", "o3", "o4"]},
             {"name": "location", "kind": "softmax", "outputs": ["o7", "o5", "o8"]},   # out of order
             {"name": "fracture", "kind": "softmax", "outputs": ["o6", "o9"]},
             {"name": "implant", "kind": "sigmoid", "outputs": ["o10"]}]
    with open(args.layout) as f:
        sk = json.load(f)
    cases = [_heads_case("small", small_out, small, 1, 9, 2.0),
             _heads_case("skelex", sk["outputs"], sk["groups"], 2, 12, 3.0),
             _heads_case("all_sigmoid", ["a", "b", "c"], [{"name": "labels", "kind": "sigmoid",
                                                          "outputs": ["a", "b", "c"]}], 3, 5, 1.5)]
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "heads.json")
    with open(path, "w") as f:
        json.dump({"made_by": "tools/mae_twin.py heads (PyTorch %s, float64)" % torch.__version__,
                   "cases": cases}, f, indent=0)
        f.write("\n")
    for c in cases:
        print("%s: B=%d n_out=%d loss=%.17g" % (c["name"], c["B"], len(c["outputs"]), c["loss"]))


# --------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("fixtures", help="write tests/fixtures/twin_*")
    p.add_argument("--out", default="tests/fixtures")
    p = sub.add_parser("check", help="load a C checkpoint directory and run a forward")
    p.add_argument("dir")
    p.add_argument("--image-npy", help="image [H,W], [C,H,W] or [B,C,H,W] (1 channel is repeated)")
    p.add_argument("--pixels", help="pixel_values npy [1,C,H,W]")
    p.add_argument("--noise", help="noise npy [N] or [B,N]")
    p.add_argument("--dump-logits", help="save logits npy [N,P] float32 (batch 1) or [B,N,P]")
    p.add_argument("--seed", type=int, default=0, help="seed for the random pixels/noise not given")
    p.add_argument("--float64", action="store_true", help="compute in float64")
    p.add_argument("--threads", type=int, default=1)
    for name in ("bench", "bench-infer"):
        p = sub.add_parser(name)
        p.add_argument("--config", choices=sorted(PRESETS), default="small" if name == "bench" else "base")
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--bf16", action="store_true",
                       help='torch.autocast("cpu", dtype=torch.bfloat16): the peer a user runs on a bf16 CPU')
        if name == "bench":
            p.add_argument("--batch", type=int, default=32)
            p.add_argument("--steps", type=int, default=3)
        else:
            p.add_argument("--passes", type=int, default=10)
            p.add_argument("--warmup", type=int, default=1)
    p = sub.add_parser("check-classifier", help="load a skelex classifier (ViTForImageClassification) and predict")
    p.add_argument("dir")
    p.add_argument("images", nargs="+", help="8-bit PNGs at the model's image size (skelex preprocess)")
    sub.add_parser("selftest", help="validate the twin")
    p = sub.add_parser("heads", help="write tests/fixtures/heads/heads.json (masked multi-head loss)")
    p.add_argument("--out", default="tests/fixtures/heads")
    p.add_argument("--layout", default="tasks/skelex_tumor_heads.json", help="the 38-output SKELEX layout")
    args = ap.parse_args(argv)
    fn = {"fixtures": cmd_fixtures, "check": cmd_check, "bench": cmd_bench, "bench-infer": cmd_bench_infer,
          "selftest": cmd_selftest, "check-classifier": cmd_check_classifier,
          "heads": cmd_heads}[args.cmd]
    return fn(args) or 0


if __name__ == "__main__":
    sys.exit(main())
