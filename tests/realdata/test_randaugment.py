"""The strong view (RandAugment and Cutout on whole uint8 batches): PIL's formulas op by op, the geometric ops'
fill, Cutout's square, determinism by seed, and the two-view method it feeds."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from realdata.data.randaugment import OPS, _round, cutout, rand_augment


def smooth_image(seed: int = 0) -> torch.Tensor:
    """A (1, 3, 32, 32) uint8 image with structure (an 8x8 random image upsampled), as photos have."""
    g = torch.Generator().manual_seed(seed)
    small = torch.randint(0, 256, (1, 3, 8, 8), generator=g).float()
    return F.interpolate(small, size=32, mode="bilinear").round().clamp(0, 255).to(torch.uint8)


def one_op(x: torch.Tensor, name: str, u: float, sign: float = 1.0) -> torch.Tensor:
    n = x.shape[0]
    out = _round(x.float(), torch.full((n,), OPS.index(name)), torch.full((n,), u), torch.full((n,), sign))
    return out.round().clamp(0, 255)


@pytest.mark.parametrize("u", [0.1, 0.6, 0.95])
def test_photometric_ops_match_pil_within_one_level(u):
    image = pytest.importorskip("PIL.Image")
    enhance, ops = pytest.importorskip("PIL.ImageEnhance"), pytest.importorskip("PIL.ImageOps")
    x = smooth_image()
    img = image.fromarray(x[0].permute(1, 2, 0).numpy())
    f, bits, threshold = 0.05 + 0.9 * u, 4 + min(int(u * 5), 4), u * 256
    want = {"brightness": enhance.Brightness(img).enhance(f), "color": enhance.Color(img).enhance(f),
            "contrast": enhance.Contrast(img).enhance(f), "sharpness": enhance.Sharpness(img).enhance(f),
            "autocontrast": ops.autocontrast(img), "equalize": ops.equalize(img),
            "posterize": ops.posterize(img, bits), "solarize": ops.solarize(img, threshold)}
    for name, ref in want.items():
        ref = torch.from_numpy(np.array(ref)).permute(2, 0, 1).float()
        diff = (one_op(x, name, u)[0] - ref).abs().max()
        assert diff <= (0 if name in ("equalize", "posterize", "solarize") else 1), (name, float(diff))


def test_identity_and_geometric_ops():
    x = smooth_image()
    assert torch.equal(one_op(x, "identity", 0.7), x.float())
    flat = torch.full((1, 3, 32, 32), 200, dtype=torch.uint8)
    shifted = one_op(flat, "translate_x", 1.0 - 1e-6)  # 0.3 of the side: about 10 columns uncovered, filled 128
    assert int((shifted[0, 0] == 128).all(0).sum()) in (9, 10) and int((shifted[0, 0] == 200).all(0).sum()) in (22, 23)
    turned = one_op(flat, "rotate", 0.5)  # 15 degrees: the corners uncovered, the centre kept
    assert turned[0, :, 16, 16].eq(200).all() and turned[0, :, 0, 0].eq(128).all()
    assert torch.equal(one_op(x, "rotate", 0.0), x.float())  # magnitude 0 is the identity


def test_cutout_fills_one_square_per_image():
    g = torch.Generator().manual_seed(3)
    x = torch.zeros(16, 3, 32, 32)
    out = cutout(x, g)
    filled = (out[:, 0] == 125) & (out[:, 1] == 123) & (out[:, 2] == 114)
    for mask in filled:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        if len(rows):  # a rectangle (a square clipped by the border), at most half the side
            assert int(mask.sum()) == len(rows) * len(cols) and max(len(rows), len(cols)) <= 16


def test_the_strong_view_is_a_function_of_the_seed():
    x = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    a = rand_augment(x, torch.Generator().manual_seed(1))
    assert a.dtype == torch.uint8 and a.shape == x.shape
    assert torch.equal(a, rand_augment(x, torch.Generator().manual_seed(1)))
    assert not torch.equal(a, rand_augment(x, torch.Generator().manual_seed(2)))
    gray = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)  # one channel (Fashion-MNIST)
    assert rand_augment(gray, torch.Generator().manual_seed(0)).shape == gray.shape
    with pytest.raises(ValueError, match="uint8"):
        rand_augment(x.float(), torch.Generator())
