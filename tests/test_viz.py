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


# --- gradients, layers and determinism on tiny models (need the core) ---

cnnrs = pytest.importorskip("cnnrs")
nn = cnnrs.nn
viz = pytest.importorskip("cnnrs.viz")
from cnnrs.viz import layers  # noqa: E402


def tiny_model(seed: int = 0):
    """conv 1->2 3x3, ReLU, flatten, linear 32->3 on 1x6x6 inputs."""
    cnnrs.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))


def tiny_forward_float64(model, x: np.ndarray):
    """The tiny model in float64 numpy: (conv output, relu output, logits)."""
    w = model[0].weight.numpy().astype(np.float64)
    b = model[0].bias.numpy().astype(np.float64)
    n = x.shape[0]
    conv = np.zeros((n, 2, 4, 4))
    for i in range(4):
        for j in range(4):
            patch = x[:, :, i : i + 3, j : j + 3]
            conv[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w) + b
    relu = np.maximum(conv, 0.0)
    lw = model[3].weight.numpy().astype(np.float64)
    lb = model[3].bias.numpy().astype(np.float64)
    return conv, relu, relu.reshape(n, -1) @ lw.T + lb


def finite_difference(f, x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += eps
        down[index] -= eps
        grad[index] = (f(up) - f(down)) / (2 * eps)
    return grad


@pytest.mark.parametrize("target", ["class", "filter-relu", "filter-conv"])
def test_input_gradient_matches_float64_finite_differences(target):
    model = tiny_model()
    rng = np.random.default_rng(3)
    x = rng.uniform(0.0, 1.0, size=(1, 1, 6, 6))
    if target == "class":
        layer, objective = None, layers.class_score_objective([2])

        def reference(v):
            return tiny_forward_float64(model, v)[2][0, 2]
    else:
        layer = "1" if target == "filter-relu" else "0"
        which = 1 if target == "filter-relu" else 0
        objective = layers.filter_norm_objective([1])

        def reference(v):
            return np.linalg.norm(tiny_forward_float64(model, v)[which][0, 1])

    with layers.frozen(model):
        value, grad = layers.input_gradient(model, layer, x, objective)
    assert np.isclose(value[0], reference(x), rtol=1e-5)
    expected = finite_difference(reference, x)
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(grad, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())


def test_a_silent_filter_is_woken_through_its_pre_activation():
    # Channel 0 is made silent on the random start: ReLU output 0, so ||h|| has no gradient.
    model = tiny_model()
    weight = model[0].weight.numpy()[0]
    bias = model[0].bias.numpy().copy()
    bias[0] = -0.9 * weight[weight > 0].sum()  # still reachable by a bright-where-positive patch
    state = {name: value.numpy() for name, value in model.state_dict().items()}
    model.load_state_dict({**state, "0.bias": bias})
    options = dict(image_shape=(1, 6, 6), jitter=0, blur_every=0, seed=1)
    _, gains = viz.filter_images(model, "1", [0], steps=40, return_gains=True, **options)
    start = viz.filter_images(model, "1", [0], steps=0, **options)
    assert layers.evaluate(model, "1", start.astype(np.float64))[0, 0].max() == 0.0  # silent at the start
    assert gains[0] == np.inf  # and firing at the end


@pytest.mark.parametrize("layer", ["features.4", None])
def test_input_gradient_through_pooling_matches_torch(layer):
    # LeNet-5 (max-pooling, padding, linear head) against the same network in PyTorch.
    torch = pytest.importorskip("torch")
    from cnnrs.models import create_model

    cnnrs.manual_seed(0)
    model = create_model("lenet5", num_classes=10)
    tn = torch.nn
    reference = tn.Sequential(
        tn.Conv2d(1, 6, 5, padding=2),
        tn.ReLU(),
        tn.MaxPool2d(2),
        tn.Conv2d(6, 16, 5),
        tn.ReLU(),
        tn.MaxPool2d(2),
        tn.Flatten(),
        tn.Linear(400, 120),
        tn.ReLU(),
        tn.Linear(120, 84),
        tn.ReLU(),
        tn.Linear(84, 10),
    )
    names = ["features.0", "features.3", "classifier.0", "classifier.2", "classifier.4"]
    torch_layers = [reference[i] for i in (0, 3, 7, 9, 11)]
    state = model.state_dict()
    with torch.no_grad():
        for name, module in zip(names, torch_layers):
            module.weight.copy_(torch.from_numpy(state[name + ".weight"].numpy()))
            module.bias.copy_(torch.from_numpy(state[name + ".bias"].numpy()))
    x = np.random.default_rng(7).uniform(size=(3, 1, 28, 28))
    x_t = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    units = [2, 5, 9]
    if layer is not None:  # units that fire (a silent one takes the pre-activation fallback instead)
        units = reference[:5](x_t).detach().flatten(2).norm(dim=2).argsort(dim=1)[:, -1 - np.arange(3)]
        units = [int(units[i, i]) for i in range(3)]
    if layer is None:
        objective = layers.class_score_objective(units)
        expected_value = reference(x_t)[torch.arange(3), units]
    else:
        objective = layers.filter_norm_objective(units)
        h = reference[:5](x_t)
        expected_value = torch.stack([h[i, u].norm() for i, u in enumerate(units)])
    expected_value.sum().backward()
    with layers.frozen(model):
        value, grad = layers.input_gradient(model, layer, x, objective)
    np.testing.assert_allclose(value, expected_value.detach().numpy(), rtol=1e-5, atol=1e-6)
    scale = np.abs(x_t.grad.numpy()).max()
    np.testing.assert_allclose(grad, x_t.grad.numpy(), rtol=1e-4, atol=1e-5 * scale)


def test_input_gradient_applies_the_normalisation_chain_rule():
    model = tiny_model()
    x = np.random.default_rng(4).uniform(size=(1, 1, 6, 6))
    mean, std = 0.2, 0.5
    with layers.frozen(model):
        _, grad = layers.input_gradient(model, None, x, layers.class_score_objective([0]), (mean, std))

    def reference(v):
        return tiny_forward_float64(model, (v - mean) / std)[2][0, 0]

    np.testing.assert_allclose(grad, finite_difference(reference, x), rtol=1e-3, atol=1e-5)


def test_parameters_untouched_and_mode_restored():
    model = tiny_model()
    model.train()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    viz.filter_images(model, "1", [0, 1], steps=3, image_shape=(1, 6, 6))
    viz.class_image(model, 1, steps=3, image_shape=(1, 6, 6))
    viz.saliency(model, np.full((1, 6, 6), 0.5))
    viz.deep_dream(model, np.full((1, 6, 6), 0.5), "1", octaves=1, steps=3)
    assert model.training
    for name, p in model.named_parameters():
        assert p.grad is None, name
        assert p.requires_grad, name
        assert np.array_equal(p.numpy(), before[name]), name


def test_resolve_layer_by_name_index_and_error():
    model = tiny_model()
    assert layers.resolve_layer(model, "1")[1] is model[1]
    assert layers.resolve_layer(model, 3)[1] is model[3]
    assert layers.resolve_layer(model, -1)[1] is model[3]
    assert layers.resolve_layer(model, None)[1] is model
    with pytest.raises(ValueError, match="layers are"):
        layers.resolve_layer(model, "features.9")


def test_forward_to_stops_at_the_layer():
    model = tiny_model()
    calls = []
    model[3].register_forward_hook(lambda *args: calls.append(1))
    out = layers.forward_to(model, "1", cnnrs.from_numpy(np.zeros((2, 1, 6, 6), dtype=np.float32)))
    assert tuple(out.shape) == (2, 2, 4, 4)
    assert calls == []  # the linear layer after it never ran


def test_same_seed_same_bits_and_other_seed_differs():
    model = tiny_model()
    options = dict(steps=6, image_shape=(1, 6, 6), jitter=1, blur_every=2)
    a = viz.filter_images(model, "1", "0-1", seed=5, **options)
    b = viz.filter_images(model, "1", "0-1", seed=5, **options)
    c = viz.filter_images(model, "1", "0-1", seed=6, **options)
    assert a.shape == (2, 1, 6, 6) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    image = np.random.default_rng(0).uniform(size=(1, 6, 6))
    d1 = viz.deep_dream(model, image, "1", octaves=2, octave_scale=1.2, min_size=4, steps=4, seed=1)
    d2 = viz.deep_dream(model, image, "1", octaves=2, octave_scale=1.2, min_size=4, steps=4, seed=1)
    assert np.array_equal(d1, d2)
    c1, p1 = viz.class_image(model, 0, steps=4, image_shape=(1, 6, 6), seed=2)
    c2, p2 = viz.class_image(model, 0, steps=4, image_shape=(1, 6, 6), seed=2)
    assert np.array_equal(c1, c2) and p1 == p2


def test_same_bits_for_any_thread_count():
    model = tiny_model()
    before = cnnrs.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            cnnrs.set_num_threads(threads)
            results.append(viz.filter_images(model, "1", "0-1", steps=5, image_shape=(1, 6, 6), seed=3))
    finally:
        cnnrs.set_num_threads(before)
    assert np.array_equal(results[0], results[1])


def test_dream_zoom_makes_frames_of_the_input_size():
    model = tiny_model()
    image = np.random.default_rng(0).uniform(size=(1, 6, 6))
    frames = viz.dream_zoom(model, image, "1", frames=3, zoom=1.2, octaves=1, steps=2)
    assert len(frames) == 3 and all(f.shape == image.shape for f in frames)
    assert not np.array_equal(frames[0], frames[1])


def test_saliency_is_the_channel_max_of_the_absolute_input_gradient():
    model = tiny_model()
    image = np.random.default_rng(5).uniform(size=(1, 6, 6))
    logits = tiny_forward_float64(model, image[None])[2][0]
    heat = viz.saliency(model, image)  # default class: the argmax
    expected = np.abs(
        finite_difference(lambda v: tiny_forward_float64(model, v[None])[2][0, logits.argmax()], image)
    )
    np.testing.assert_allclose(heat, expected.max(axis=0), rtol=1e-3, atol=1e-5)


def test_filter_grid_shapes():
    first = nn.Conv2d(1, 6, 5)
    grid = viz.filter_grid(first, scale=2)
    assert grid.shape == (1, 2 * (10 + 2) + 2, 3 * (10 + 2) + 2)  # 6 kernels in a 3x2 grid
    deeper = nn.Conv2d(4, 2, 3)
    assert viz.filter_grid(deeper, scale=1).shape == (1, 2 * 5 + 2, 4 * 5 + 2)  # one row per output
    with pytest.raises(ValueError, match="conv weight"):
        viz.filter_grid(np.zeros((3, 3)))


def test_bad_arguments_raise_clear_errors():
    model = tiny_model()
    with pytest.raises(ValueError, match="image_shape"):
        viz.filter_images(model, "1", [0], steps=1)
    with pytest.raises(ValueError, match="filter index out of range"):
        viz.filter_images(model, "1", [5], steps=1, image_shape=(1, 6, 6))
    with pytest.raises(ValueError, match="class index out of range"):
        viz.class_image(model, 7, steps=1, image_shape=(1, 6, 6))
    with pytest.raises(ValueError, match="lr"):
        viz.class_image(model, 0, steps=1, lr=0.0, image_shape=(1, 6, 6))


# --- the acceptance checks on a small MNIST network trained here ---

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


@pytest.fixture(scope="module")
def mnist_net():
    """A small LeNet-like net trained for 200 SGD steps of 32 MNIST training images.

    Reaches 80-93% test accuracy; enough for the visualisations to mean
    something. Skipped when the MNIST files are not in $CNNRS_DATA.

    Where it lands in that range depends on float32 rounding: a kernel change
    that rounds differently (Winograd, reordered sums) moves it as a change of
    seed does. Over seeds 0-11 (2026-11-25) the accuracy went from 0.804 to 0.938,
    the smallest filter-image gain of the tests below from 8.8 to 21, the
    deep-dream energy ratio from 1.7 to 3.1; their thresholds sit below those.
    """
    from cnnrs.data import MNIST

    try:
        train = MNIST(train=True)
    except Exception as exc:  # DatasetNotFoundError and friends
        pytest.skip(f"MNIST not available: {exc}")
    cnnrs.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 10),
    )
    optimizer = cnnrs.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    images_all = (train.images[:6400] - MNIST_MEAN) / MNIST_STD
    labels_all = train.targets[:6400]
    order = np.random.default_rng(0).permutation(len(labels_all))
    batch = 32
    model.train()
    for step in range(200):
        index = order[(step * batch) % len(order) : (step * batch) % len(order) + batch]
        optimizer.zero_grad()
        loss = loss_fn(
            model(cnnrs.from_numpy(images_all[index].astype(np.float32))), cnnrs.tensor(labels_all[index])
        )
        loss.backward()
        optimizer.step()
    model.eval()
    test = MNIST(train=False)
    with cnnrs.no_grad():
        logits = model(cnnrs.from_numpy(((test.images[:500] - MNIST_MEAN) / MNIST_STD).astype(np.float32)))
    accuracy = float((logits.numpy().argmax(axis=1) == test.targets[:500]).mean())
    assert accuracy > 0.75, f"the test network did not learn (accuracy {accuracy:.3f})"
    return model


def test_class_images_are_classified_as_their_class_with_99_percent_confidence(mnist_net):
    pictures, confidence = viz.class_image(
        mnist_net,
        list(range(10)),
        steps=60,
        lr=0.1,
        # No jitter: with random shifts the confidence of a thin digit ("1") swings between
        # 0.6 and 1.0 from step to step, so rounding-level changes in the kernels decided
        # whether this test passed. Light blur only: heavy blur trades confidence for smoothness.
        jitter=0,
        blur_every=8,
        blur_sigma=0.5,
        image_shape=(1, 28, 28),
        normalize=(MNIST_MEAN, MNIST_STD),
    )
    assert pictures.shape == (10, 1, 28, 28)
    assert pictures.min() >= 0.0 and pictures.max() <= 1.0
    assert np.all(confidence >= 0.99), confidence


def alive_filters(model, layer, images: np.ndarray) -> np.ndarray:
    """Indices of the units of ``layer`` that fire (> 0 somewhere) on at least one of ``images``."""
    out = layers.evaluate(model, layer, images, (MNIST_MEAN, MNIST_STD))
    return np.flatnonzero(out.reshape(out.shape[0], out.shape[1], -1).max(axis=(0, 2)) > 0)


def test_filter_images_raise_their_activation_fivefold(mnist_net):
    # The second convolution's ReLU: every filter that fires on real digits must reach
    # five times its activation on the U[0, 1] start (8.8x to 21x over the fixture's
    # seeds). (Filters that never fire on the data - dead ReLUs - cannot be excited by
    # any input and are left out.) The plain
    # course update (normalised gradient, clip to [0, 1], no jitter or blur): the
    # regularisers trade some activation for better-looking pictures.
    from cnnrs.data import MNIST

    alive = alive_filters(mnist_net, "4", MNIST(train=True).images[:1000].astype(np.float64))
    assert len(alive) >= 8, f"too few live filters to test: {alive}"
    pictures, gains = viz.filter_images(
        mnist_net,
        "4",
        alive.tolist(),
        steps=80,
        lr=0.1,
        jitter=0,
        blur_every=0,
        image_shape=(1, 28, 28),
        normalize=(MNIST_MEAN, MNIST_STD),
        return_gains=True,
    )
    assert pictures.shape == (len(alive), 1, 28, 28)
    assert np.all(gains >= 5.0), dict(zip(alive.tolist(), gains.round(1)))


def test_first_layer_filter_images_raise_their_activation(mnist_net):
    # A first-layer unit is affine in the pixels, so clipping to [0, 1] bounds what any
    # image can reach: often less than ten times a random start. Ascent must still raise it
    # (plain course update, as above).
    _, gains = viz.filter_images(
        mnist_net,
        "1",
        "0-5",
        steps=80,
        lr=0.1,
        jitter=0,
        blur_every=0,
        image_shape=(1, 28, 28),
        normalize=(MNIST_MEAN, MNIST_STD),
        return_gains=True,
    )
    assert np.all(gains > 1.5), gains


def test_deep_dream_raises_the_layer_energy(mnist_net):
    from cnnrs.data import MNIST

    digit = MNIST(train=False).images[0].astype(np.float64)
    norm = (MNIST_MEAN, MNIST_STD)
    dreamed = viz.deep_dream(mnist_net, digit, "4", octaves=3, octave_scale=1.3, steps=10, normalize=norm)
    assert dreamed.shape == digit.shape

    def energy(image):
        return (layers.evaluate(mnist_net, "4", image[None], norm) ** 2).sum()

    assert energy(dreamed) > 1.5 * energy(digit)  # 1.7x to 3.1x over the fixture's seeds


# --- the commands ---


def test_visualize_and_dream_commands_write_pictures_and_numbers(tmp_path):
    pytest.importorskip("PIL")
    import json

    from cnnrs.checkpoint import save_checkpoint
    from cnnrs.cli import main
    from cnnrs.models import create_model

    cnnrs.manual_seed(0)
    model = create_model("lenet5", num_classes=10)
    config = {"model": "lenet5", "model_kwargs": {"num_classes": 10}, "dataset": "mnist"}
    run = tmp_path / "run"
    save_checkpoint(run, model.state_dict(), {"epoch": 1}, config)
    picture = tmp_path / "digit.png"
    images.save_png(np.random.default_rng(0).uniform(size=(1, 28, 28)), picture)
    out = tmp_path / "out"
    fast = ["--steps", "3", "--out", str(out)]
    status = main(
        ["visualize", str(run), "--layer", "features.4", "--filters", "0-2", "--classes", "1,7", "--kernels"]
        + ["--saliency", str(picture)]
        + fast
    )
    assert status == 0
    for name in ("filters_features_4.png", "classes.png", "kernels.png", "saliency.png", "numbers.json"):
        assert (out / name).is_file(), name
    numbers = json.loads((out / "numbers.json").read_text())
    assert len(numbers["filters"]["gains"]) == 3 and len(numbers["classes"]["confidence"]) == 2
    assert np.allclose(numbers["normalize"], [[0.1307], [0.3081]])  # MNIST's, from the run config
    status = main(
        ["dream", str(run), "--image", str(picture), "--layer", "features.3", "--octaves", "2"] + fast
    )
    assert status == 0 and (out / "dream_features_3.png").is_file()
    assert main(["visualize", str(run), "--layer", "features.99"] + fast) == 2  # a clear error, no traceback
