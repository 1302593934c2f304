"""MNIST / Fashion-MNIST: the real files from $CNNRS_DATA, and corrupt or truncated IDX files."""

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from cnnrs.data import MNIST, DataLoader, DatasetError, DatasetNotFoundError, FashionMNIST
from cnnrs.data import transforms as T
from cnnrs.data.download import md5_of
from cnnrs.data.idx import parse_idx, read_idx
from cnnrs.errors import CnnrsError

DATA = os.environ.get("CNNRS_DATA")


def _data_dir(name):
    if not DATA:
        pytest.skip("CNNRS_DATA is not set: the real MNIST / Fashion-MNIST files are not available")
    # CNNRS_DATA may be relative (the README uses ../shared/data): resolve it once here.
    folder = Path(DATA).resolve() / name
    if not folder.is_dir():
        pytest.skip(f"{folder} does not exist (CNNRS_DATA={DATA})")
    return folder


@pytest.fixture(scope="module")
def mnist_train():
    _data_dir("mnist")
    return MNIST(train=True)


@pytest.fixture(scope="module")
def mnist_test():
    _data_dir("mnist")
    return MNIST(train=False)


@pytest.fixture(scope="module")
def fashion_train():
    _data_dir("fashion-mnist")
    return FashionMNIST(train=True)


# Label counts of the official files (e.g. np.bincount(torchvision MNIST(...).targets)).
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_train_shapes_dtypes_and_labels(mnist_train):
    ds = mnist_train
    assert ds.root == Path(DATA) / "mnist" and ds.split == "Train"
    assert len(ds) == 60000
    assert ds.data.shape == (60000, 28, 28) and ds.data.dtype == np.uint8
    assert ds.targets.shape == (60000,) and ds.targets.dtype == np.int64
    assert np.bincount(ds.targets).tolist() == MNIST_TRAIN_COUNTS
    assert ds.targets[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert ds.images.shape == (60000, 1, 28, 28) and ds.images.dtype == np.float32
    assert ds.images.min() == 0.0 and ds.images.max() == 1.0
    image, label = ds[0]
    assert image.shape == (1, 28, 28) and image.dtype == np.float32 and label == 5
    np.testing.assert_array_equal(image[0], ds.data[0].astype(np.float32) / 255)


def test_mnist_statistics_match_the_documented_constants(mnist_train, fashion_train):
    cases = (
        (mnist_train, T.MNIST_MEAN, T.MNIST_STD),
        (fashion_train, T.FASHION_MNIST_MEAN, T.FASHION_MNIST_STD),
    )
    for ds, mean, std in cases:
        # Exact moments with integer sums (255^2 fits in uint16): fast and no float64 copy of 47M pixels.
        count = ds.data.size
        sum1 = int(ds.data.sum(dtype=np.int64))
        squares = ds.data.astype(np.uint16)
        np.multiply(squares, squares, out=squares)
        sum2 = int(squares.sum(dtype=np.int64))
        pixel_mean = sum1 / count / 255
        pixel_std = np.sqrt(sum2 / count / 255**2 - pixel_mean**2)
        assert pixel_mean == pytest.approx(mean[0], abs=1e-4)
        assert pixel_std == pytest.approx(std[0], abs=1e-4)
    # the float view gives the same mean
    assert float(mnist_train.images.mean(dtype=np.float64)) == pytest.approx(T.MNIST_MEAN[0], abs=1e-4)


def test_mnist_test_split(mnist_test):
    assert len(mnist_test) == 10000 and mnist_test.split == "Test"
    assert np.bincount(mnist_test.targets).tolist() == MNIST_TEST_COUNTS


def test_fashion_mnist(fashion_train):
    assert fashion_train.data.shape == (60000, 28, 28)
    assert np.bincount(fashion_train.targets).tolist() == [6000] * 10
    assert fashion_train.classes[9] == "Ankle boot" and len(fashion_train.classes) == 10
    test = FashionMNIST(train=False)
    assert len(test) == 10000 and np.bincount(test.targets).tolist() == [1000] * 10


def test_published_md5s_match_the_real_files():
    for cls in (MNIST, FashionMNIST):
        folder = _data_dir(cls.name)
        for filename, md5 in (*cls.train_files, *cls.test_files):
            assert md5_of(folder / filename) == md5, filename


def test_loader_over_real_mnist(mnist_test):
    loader = DataLoader(mnist_test, batch_size=128, shuffle=True, generator=0)
    assert len(loader) == 79 and loader.uses_batch_path
    total, label_sum = 0, 0
    for images, labels in loader:
        assert images.shape[1:] == (1, 28, 28)
        total += images.shape[0]
        label_sum += int(labels.numpy().sum())
    assert total == 10000 and label_sum == int(mnist_test.targets.sum())


# ---------------------------------------------------------------- synthetic and corrupt files


def _idx_bytes(array, magic):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()


def _write(root, prefix="train", images=None, labels=None, n=5, compress=True):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) if images is None else images
    labels = rng.integers(0, 10, n, dtype=np.uint8) if labels is None else labels
    image_bytes = images if isinstance(images, bytes) else _idx_bytes(images, 2051)
    label_bytes = labels if isinstance(labels, bytes) else _idx_bytes(labels, 2049)
    pack = gzip.compress if compress else bytes
    (root / f"{prefix}-images-idx3-ubyte.gz").write_bytes(pack(image_bytes))
    (root / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(pack(label_bytes))
    return images, labels


def test_synthetic_files_round_trip_gzip_and_raw(tmp_path):
    images, labels = _write(tmp_path)
    ds = MNIST(tmp_path)
    np.testing.assert_array_equal(ds.data, images)
    np.testing.assert_array_equal(ds.targets, labels)
    _write(tmp_path, compress=False)  # uncompressed IDX under the same names also reads
    np.testing.assert_array_equal(MNIST(tmp_path).data, images)


def test_root_from_environment(tmp_path, monkeypatch):
    (tmp_path / "fashion-mnist").mkdir()
    _write(tmp_path / "fashion-mnist", prefix="t10k")
    monkeypatch.setenv("CNNRS_DATA", str(tmp_path))
    ds = FashionMNIST(train=False)
    assert ds.root == tmp_path / "fashion-mnist" and len(ds) == 5


def test_missing_files_name_the_paths(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        MNIST(tmp_path / "nowhere")
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, CnnrsError)
    assert str(tmp_path / "nowhere" / "train-images-idx3-ubyte.gz") in message
    assert "train-labels-idx1-ubyte.gz" in message and "download=True" in message and "CNNRS_DATA" in message


def _corrupt_cases():
    good_images = np.zeros((5, 28, 28), np.uint8)
    good_labels = np.zeros(5, np.uint8)
    header = _idx_bytes(good_images, 2051)
    return {
        "truncated pixels": (dict(images=header[:-100]), "truncated"),
        "trailing bytes": (dict(images=header + b"\0"), "trailing"),
        "labels file as images": (dict(images=_idx_bytes(good_labels, 2049)), "magic is 2049"),
        "not idx at all": (dict(images=b"hello world, not an idx file"), "magic"),
        "count mismatch": (dict(labels=np.zeros(4, np.uint8)), "5 images but"),
        "label out of range": (
            dict(labels=np.array([0, 1, 2, 3, 10], np.uint8)),
            r"labels must be in \[0, 9\]",
        ),
        "wrong image size": (dict(images=np.zeros((5, 28, 27), np.uint8)), r"expected \(28, 28\)"),
        "empty file": (dict(images=b""), "too short"),
        "truncated header": (dict(images=header[:9]), "truncated IDX header"),
    }


@pytest.mark.parametrize("case", sorted(_corrupt_cases()))
def test_corrupt_idx_raises_clearly(tmp_path, case):
    kwargs, pattern = _corrupt_cases()[case]
    _write(tmp_path, **kwargs)
    with pytest.raises(DatasetError, match=pattern) as info:
        MNIST(tmp_path)
    assert isinstance(info.value, ValueError) and isinstance(info.value, CnnrsError)


def test_bad_and_truncated_gzip(tmp_path):
    _write(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    compressed = path.read_bytes()
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(DatasetError, match="corrupt or truncated gzip"):
        MNIST(tmp_path)
    garbled = bytearray(compressed)
    garbled[20:40] = b"\xff" * 20
    path.write_bytes(bytes(garbled))
    with pytest.raises(DatasetError, match="gzip"):
        MNIST(tmp_path)


def test_parse_idx_other_types_and_endianness():
    values = np.array([[1.5, -2.0], [3.25, 4.0]], dtype=">f4")
    raw = struct.pack(">I", 0x0D02) + struct.pack(">II", 2, 2) + values.tobytes()
    parsed = parse_idx(raw)
    assert parsed.dtype == np.float32 and parsed.dtype.isnative
    np.testing.assert_array_equal(parsed, values.astype(np.float32))


def test_read_idx_result_is_writable_copy(tmp_path):
    _write(tmp_path)
    array = read_idx(tmp_path / "train-labels-idx1-ubyte.gz")
    array[0] = 7  # owns writable memory
    assert array[0] == 7


def test_download_from_a_file_url_mirror_of_the_real_files(tmp_path):
    folder = _data_dir("mnist")
    ds = MNIST(tmp_path / "copy", train=False, download=True, mirror=folder.as_uri())
    assert len(ds) == 10000 and np.bincount(ds.targets).tolist() == MNIST_TEST_COUNTS
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == [name for name, _ in MNIST.test_files]
