"""Transforms: per-sample vs batch equality, Normalize math, RandomCrop windows, flips, RNG use."""

import numpy as np
import pytest

import cnnrs
from cnnrs.data import transforms as T
from cnnrs.errors import ArgumentError, ShapeError


def _batch(n=6, c=3, h=7, w=5, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w), dtype=np.float32)


def _per_sample(transform, images):
    return np.stack([transform(image) for image in images])


@pytest.mark.parametrize(
    "make",
    [
        lambda: T.Normalize((0.1, 0.2, 0.3), (0.5, 0.25, 2.0)),
        lambda: T.RandomCrop((5, 4), padding=2, generator=11),
        lambda: T.RandomCrop(3, generator=12),
        lambda: T.RandomCrop(7, padding=(1, 2), padding_mode="reflect", generator=13),
        lambda: T.RandomHorizontalFlip(generator=14),
        lambda: T.Compose(
            [
                T.RandomCrop((7, 5), padding=1, generator=15),
                T.RandomHorizontalFlip(0.5, generator=16),
                T.Normalize((0.5,), (0.25,)),
            ]
        ),
    ],
)
def test_batch_equals_per_sample(make):
    images = _batch()
    batched = make()(images)
    one_by_one = _per_sample(make(), images)
    assert batched.dtype == np.float32
    np.testing.assert_array_equal(batched, one_by_one)


def test_normalize_matches_float64_reference():
    images = _batch()
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    expected = (images.astype(np.float64) - np.reshape(mean, (1, 3, 1, 1))) / np.reshape(std, (1, 3, 1, 1))
    out = T.Normalize(mean, std)(images)
    assert out.dtype == np.float32 and out.shape == images.shape
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_normalize_single_value_broadcasts_and_inplace_writes_input():
    images = _batch(c=2)
    expected = (images - 0.5) / 0.25
    np.testing.assert_allclose(T.Normalize([0.5], [0.25])(images), expected, rtol=1e-6)
    target = images.copy()
    out = T.Normalize([0.5], [0.25], inplace=True)(target)
    assert out is target
    np.testing.assert_allclose(target, expected, rtol=1e-6)


def test_normalize_errors():
    with pytest.raises(ShapeError, match="2 mean/std values for images with 3 channels"):
        T.Normalize((0.1, 0.2), (1.0, 1.0))(_batch(c=3))
    with pytest.raises(ArgumentError, match="std must not contain 0"):
        T.Normalize((0.1,), (0.0,))
    with pytest.raises(ShapeError, match="same length"):
        T.Normalize((0.1, 0.2), (1.0,))
    with pytest.raises(ShapeError, match=r"got shape \(7, 5\)"):
        T.Normalize((0.1,), (1.0,))(np.zeros((7, 5), np.float32))


def _window_offsets(padded, crop):
    """All (oy, ox) where crop equals a window of padded (C, H, W)."""
    h, w = crop.shape[1:]
    return [
        (oy, ox)
        for oy in range(padded.shape[1] - h + 1)
        for ox in range(padded.shape[2] - w + 1)
        if np.array_equal(padded[:, oy : oy + h, ox : ox + w], crop)
    ]


def test_random_crop_takes_a_window_of_the_zero_padded_image_and_covers_all_offsets():
    images = _batch(n=400, c=1, h=4, w=4, seed=3) + 1.0  # no zeros inside, so padding is recognisable
    crop = T.RandomCrop(4, padding=2, generator=5)
    out = crop(images)
    assert out.shape == (400, 1, 4, 4)
    seen = set()
    for image, cropped in zip(images, out):
        padded = np.pad(image, ((0, 0), (2, 2), (2, 2)))
        offsets = _window_offsets(padded, cropped)
        assert len(offsets) == 1
        seen.add(offsets[0])
    assert seen == {(oy, ox) for oy in range(5) for ox in range(5)}


def test_random_crop_asymmetric_padding_and_fill_and_edge_mode():
    image = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    # padding (left, top, right, bottom) = (1, 0, 0, 2): output (3 + 2, 4 + 1) with crop = full size
    out = T.RandomCrop((5, 5), padding=(1, 0, 0, 2), fill=-1.0, generator=0)(image)
    expected = np.pad(image, ((0, 0), (0, 2), (1, 0)), constant_values=-1.0)
    np.testing.assert_array_equal(out, expected)
    edge = T.RandomCrop((5, 6), padding=1, padding_mode="edge", generator=0)(image)
    np.testing.assert_array_equal(edge, np.pad(image, ((0, 0), (1, 1), (1, 1)), mode="edge"))


def test_random_crop_errors():
    with pytest.raises(ShapeError, match=r"crop size \(9, 9\) is larger"):
        T.RandomCrop(9, padding=1, generator=0)(_batch(h=5, w=5))
    with pytest.raises(ArgumentError, match="padding_mode"):
        T.RandomCrop(3, padding_mode="wrap")
    with pytest.raises(ArgumentError, match="non-negative"):
        T.RandomCrop(3, padding=-1)
    with pytest.raises(ArgumentError, match="size must be"):
        T.RandomCrop("3")
    with pytest.raises(TypeError, match="generator"):
        T.RandomCrop(3, generator="seed")


def test_horizontal_flip_probabilities():
    images = _batch(n=1000, c=2, h=3, w=4)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0, generator=0)(images), images[..., ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0, generator=0)(images), images)
    out = T.RandomHorizontalFlip(0.5, generator=1)(images)
    flipped = np.array([np.array_equal(o, i[..., ::-1]) for o, i in zip(out, images)])
    kept = np.array([np.array_equal(o, i) for o, i in zip(out, images)])
    assert np.all(flipped ^ kept)
    assert 400 < flipped.sum() < 600  # Binomial(1000, 0.5): 6 sigma either side
    with pytest.raises(ArgumentError):
        T.RandomHorizontalFlip(1.5)


def test_flip_does_not_modify_input():
    images = _batch()
    before = images.copy()
    T.RandomHorizontalFlip(1.0, generator=0)(images)
    np.testing.assert_array_equal(images, before)


def test_default_generator_is_the_cnnrs_global_one():
    images = _batch(n=32)
    pipeline = T.Compose([T.RandomCrop(5, padding=2), T.RandomHorizontalFlip()])
    cnnrs.manual_seed(123)
    first = pipeline(images)
    cnnrs.manual_seed(123)
    second = pipeline(images)
    cnnrs.manual_seed(124)
    third = pipeline(images)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, third)


def test_seeded_transform_is_repeatable_and_numpy_generator_is_shared():
    images = _batch()
    np.testing.assert_array_equal(
        T.RandomCrop(4, padding=1, generator=7)(images), T.RandomCrop(4, 1, generator=7)(images)
    )
    rng = np.random.default_rng(0)
    T.RandomHorizontalFlip(generator=rng)(images)
    assert rng.bit_generator.state != np.random.default_rng(0).bit_generator.state


def test_batchable_flags():
    assert T.Compose([T.Normalize((0.0,), (1.0,)), T.RandomHorizontalFlip()]).batchable
    assert not T.Compose([T.Normalize((0.0,), (1.0,)), T.Lambda(np.flipud)]).batchable
    assert T.Compose([T.Lambda(lambda x: x * 2, batchable=True)]).batchable
    assert not T.Compose([lambda x: x]).batchable  # plain callables may not accept batches
    assert T.is_batchable(None)


def test_dataset_constants_documented():
    assert T.MNIST_MEAN == (0.1307,) and T.MNIST_STD == (0.3081,)
    assert T.FASHION_MNIST_MEAN == (0.2860,) and T.FASHION_MNIST_STD == (0.3530,)
    assert len(T.CIFAR10_MEAN) == len(T.CIFAR10_STD) == 3
