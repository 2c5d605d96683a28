"""The strong view of MLKD's two-view data (``--strong-view``): RandAugment as FixMatch and MLKD draw it, then Cutout,
on a whole uint8 batch on its device (no loop over samples).

Per sample, each of ``N_OPS`` rounds picks one of the 14 operations of :data:`OPS` uniformly (with replacement) and
a magnitude uniformly in that operation's range (the rounds' magnitude argument of the reference, 10, is ignored
there too): AutoContrast, Brightness, Color, Contrast, Sharpness (enhance factor 0.05-0.95), Equalize, Identity,
Posterize (4-8 bits), Rotate (+-30 degrees), ShearX/Y (+-0.3), Solarize (threshold 0-256), TranslateX/Y (+-0.3 of
the side). Then a Cutout square of side U(0, 0.5) x the width at a uniform centre is filled with (125, 123, 114)
(one grey for other channel counts). Geometric operations fill what they uncover with 128. Where the reference
works on PIL images, this works on tensors: the enhancements, Equalize and Posterize follow PIL's formulas, rotation
and shear are about the centre with nearest-pixel sampling.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

OPS = ("autocontrast", "brightness", "color", "contrast", "equalize", "identity", "posterize", "rotate", "sharpness",
       "shear_x", "shear_y", "solarize", "translate_x", "translate_y")
N_OPS = 2
GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
CUTOUT_FILL = (125.0, 123.0, 114.0)


def _blend(base: torch.Tensor, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL's ImageEnhance: base + factor (x - base), per sample (B,) factors."""
    return base + factor.view(-1, 1, 1, 1) * (x - base)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 1, H, W) luminance (ITU-R 601-2, as PIL's "L"); a 1-channel image is its own."""
    if x.shape[1] != 3:
        return x.mean(1, keepdim=True)
    return 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]


def _sharp_base(x: torch.Tensor) -> torch.Tensor:
    """PIL's SMOOTH filter (3x3, centre 5, the rest 1, over 13), borders kept."""
    c = x.shape[1]
    k = torch.ones(3, 3, dtype=x.dtype, device=x.device)
    k[1, 1] = 5.0
    smooth = F.conv2d(x, (k / 13).expand(c, 1, 3, 3), padding=1, groups=c)
    out = x.clone()
    out[:, :, 1:-1, 1:-1] = smooth[:, :, 1:-1, 1:-1]
    return out


def _autocontrast(x: torch.Tensor) -> torch.Tensor:
    lo, hi = x.amin((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
    scale = 255.0 / (hi - lo).clamp_min(1.0)
    return torch.where(hi > lo, (x - lo) * scale, x)


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """PIL's ImageOps.equalize per image and channel: lut = (step // 2 + counts below) // step, step = (pixels -
    the last non-empty bin's count) // 255; a channel whose step is 0 is left as it is."""
    b, c, h, w = x.shape
    v = x.round().clamp(0, 255).long().view(b * c, h * w)
    hist = torch.zeros(b * c, 256, dtype=torch.long, device=x.device).scatter_add_(1, v, torch.ones_like(v))
    last_bin = (hist > 0).long().cumsum(1).argmax(1, keepdim=True)  # the first index where the count of bins peaks
    last = hist.gather(1, last_bin).squeeze(1)
    step = (h * w - last) // 255
    below = hist.cumsum(1) - hist
    lut = ((step // 2)[:, None] + below) // step.clamp_min(1)[:, None]
    out = lut.clamp(0, 255).gather(1, v)
    return torch.where((step > 0)[:, None], out, v).view(b, c, h, w).to(x.dtype)


def _geometric(x: torch.Tensor, op: torch.Tensor, mag: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """Every sample's rotation, shear or translation at once (the identity for the other samples), by one
    nearest-pixel ``grid_sample``; uncovered pixels 128. op, mag, sign: (B,)."""
    b = x.shape[0]
    theta = torch.zeros(b, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    angle = sign * mag * 30.0 * math.pi / 180
    rot = op == OPS.index("rotate")
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta[:, 0, 0] = torch.where(rot, cos, theta[:, 0, 0])
    theta[:, 0, 1] = torch.where(rot, -sin, theta[:, 0, 1])
    theta[:, 1, 0] = torch.where(rot, sin, theta[:, 1, 0])
    theta[:, 1, 1] = torch.where(rot, cos, theta[:, 1, 1])
    shear = sign * mag * 0.3
    theta[:, 0, 1] = torch.where(op == OPS.index("shear_x"), shear, theta[:, 0, 1])
    theta[:, 1, 0] = torch.where(op == OPS.index("shear_y"), shear, theta[:, 1, 0])
    shift = sign * mag * 0.3 * 2  # a fraction of the side, in grid units (the side spans 2)
    theta[:, 0, 2] = torch.where(op == OPS.index("translate_x"), shift, theta[:, 0, 2])
    theta[:, 1, 2] = torch.where(op == OPS.index("translate_y"), shift, theta[:, 1, 2])
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    inside = torch.ones_like(x[:, :1])
    moved = F.grid_sample(torch.cat([x, inside], 1), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return torch.where(moved[:, -1:] > 0.5, moved[:, :-1], torch.full_like(x, 128.0))


def _round(x: torch.Tensor, op: torch.Tensor, u: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """One RandAugment round: sample i gets operation OPS[op[i]] at magnitude u[i] in [0, 1)."""
    factor = 0.05 + 0.9 * u
    bits = (4 + (u * 5).floor().clamp(max=4)).long()  # 4..8
    drop = (2 ** (8 - bits)).view(-1, 1, 1, 1).to(x.dtype)
    threshold = (u * 256).view(-1, 1, 1, 1)
    gray = _gray(x)
    results = {
        "autocontrast": lambda: _autocontrast(x),
        "brightness": lambda: _blend(torch.zeros_like(x), x, factor),
        "color": lambda: _blend(gray.expand_as(x), x, factor),
        "contrast": lambda: _blend(gray.mean((1, 2, 3), keepdim=True).round().expand_as(x), x, factor),
        "equalize": lambda: _equalize(x),
        "posterize": lambda: torch.floor(x / drop) * drop,
        "sharpness": lambda: _blend(_sharp_base(x), x, factor),
        "solarize": lambda: torch.where(x < threshold, x, 255.0 - x),
    }
    out = x
    for name, make in results.items():
        chosen = op == OPS.index(name)
        if chosen.any():
            out = torch.where(chosen.view(-1, 1, 1, 1), make(), out)
    moving = sum(op == OPS.index(name) for name in GEOMETRIC).bool()
    if moving.any():
        out = torch.where(moving.view(-1, 1, 1, 1), _geometric(x, op, u, sign), out)
    return out.clamp(0, 255)


def cutout(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A square of side U(0, 0.5) x W (whole pixels) centred uniformly, filled with :data:`CUTOUT_FILL`, per sample."""
    b, c, h, w = x.shape
    dev = x.device
    side = (torch.rand(b, generator=generator, device=dev) * 0.5 * w).long()
    cy = (torch.rand(b, generator=generator, device=dev) * h).long()
    cx = (torch.rand(b, generator=generator, device=dev) * w).long()
    y0, x0 = (cy - side // 2).clamp(0, h), (cx - side // 2).clamp(0, w)
    y1, x1 = (y0 + side).clamp(0, h), (x0 + side).clamp(0, w)
    rows, cols = torch.arange(h, device=dev), torch.arange(w, device=dev)
    hole = ((rows[None, :] >= y0[:, None]) & (rows[None, :] < y1[:, None]))[:, :, None] & \
        ((cols[None, :] >= x0[:, None]) & (cols[None, :] < x1[:, None]))[:, None, :]
    fill = CUTOUT_FILL if c == 3 else (sum(CUTOUT_FILL) / 3,) * c
    fill_t = torch.tensor(fill, dtype=x.dtype, device=dev).view(1, c, 1, 1)
    return torch.where(hole[:, None], fill_t, x)


def rand_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(B, C, H, W) uint8 images -> their strong view (uint8): :data:`N_OPS` RandAugment rounds, then Cutout; every
    draw from ``generator`` (on ``x``'s device) in a fixed order, so the view is a function of the seed."""
    if x.dim() != 4 or x.dtype != torch.uint8:
        raise ValueError(f"rand_augment takes a (B, C, H, W) uint8 batch, got {x.dtype} of shape {tuple(x.shape)}")
    b, dev = x.shape[0], x.device
    out = x.float()
    for _ in range(N_OPS):
        op = torch.randint(0, len(OPS), (b,), generator=generator, device=dev)
        u = torch.rand(b, generator=generator, device=dev)
        sign = torch.randint(0, 2, (b,), generator=generator, device=dev).float() * 2 - 1
        out = _round(out, op, u, sign)
    return cutout(out, generator).round().clamp(0, 255).to(torch.uint8)
