"""DataLoader, TensorDataset, Subset, random_split: batching, shuffling, resume, batch vs per-sample path."""

import gzip
import json
import struct

import numpy as np
import pytest

import cnnrs
from cnnrs.data import MNIST, DataLoader, Dataset, Subset, TensorDataset, default_collate, random_split
from cnnrs.data import transforms as T
from cnnrs.errors import ArgumentError, ShapeError
from cnnrs.tensor import Tensor


class PerSample(Dataset):
    """Hides the batch protocol of another data set: the loader must go sample by sample."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __getitem__(self, index):
        return self.dataset[index]

    def __len__(self):
        return len(self.dataset)


def _arrays(n=10):
    x = np.arange(n * 6, dtype=np.float64).reshape(n, 1, 2, 3)
    y = np.arange(n, dtype=np.int32) % 4
    return x, y


def _labels_of(loader):
    return [y.numpy().tolist() for _, y in loader]


def test_tensor_dataset_rows_and_errors():
    x, y = _arrays()
    ds = TensorDataset(x, y)
    assert len(ds) == 10
    row_x, row_y = ds[3]
    np.testing.assert_array_equal(row_x, x[3])
    assert row_y == y[3]
    from_tensors = TensorDataset(cnnrs.tensor(x), cnnrs.tensor(y))
    assert isinstance(from_tensors[2][0], Tensor) and from_tensors[2][0].shape == (1, 2, 3)
    with pytest.raises(ShapeError, match=r"size mismatch.*\(10, 1, 2, 3\).*\(9,\)"):
        TensorDataset(x, y[:9])
    with pytest.raises(ShapeError, match="first"):
        TensorDataset(np.float32(1.0))
    with pytest.raises(ArgumentError):
        TensorDataset()


@pytest.mark.parametrize("drop_last, expected_len, last_size", [(False, 4, 1), (True, 3, 3)])
def test_batching_len_and_drop_last(drop_last, expected_len, last_size):
    x, y = _arrays(10)
    loader = DataLoader(TensorDataset(x, y), batch_size=3, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == len(batches) == expected_len
    assert batches[-1][0].shape == (last_size, 1, 2, 3)
    images, labels = batches[0]
    assert isinstance(images, Tensor) and images.dtype == np.float32
    assert isinstance(labels, Tensor) and labels.dtype == np.int64
    seen = np.concatenate([b[1].numpy() for b in batches])
    np.testing.assert_array_equal(seen, y[: len(seen)])  # no shuffle: data set order
    np.testing.assert_array_equal(batches[1][0].numpy(), x[3:6].astype(np.float32))


def test_len_of_empty_and_exact_sizes():
    x, y = _arrays(6)
    assert len(DataLoader(TensorDataset(x, y), batch_size=3)) == 2
    assert len(DataLoader(TensorDataset(x, y), batch_size=7, drop_last=True)) == 0
    assert list(DataLoader(TensorDataset(x[:0], y[:0]), batch_size=2)) == []


def test_bad_arguments():
    x, y = _arrays()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ArgumentError, match="batch_size"):
            DataLoader(TensorDataset(x, y), batch_size=bad)
    with pytest.raises(TypeError, match="__getitem__"):
        DataLoader(object())
    with pytest.raises(TypeError, match="generator"):
        DataLoader(TensorDataset(x, y), generator=1.5)


def test_shuffle_is_a_permutation_repeatable_by_seed_and_new_each_epoch():
    x, y = np.zeros((50, 1)), np.arange(50)
    ds = TensorDataset(x, y)
    loader = DataLoader(ds, batch_size=8, shuffle=True, generator=42)
    epoch1, epoch2 = sum(_labels_of(loader), []), sum(_labels_of(loader), [])
    assert sorted(epoch1) == sorted(epoch2) == list(range(50))
    assert epoch1 != epoch2
    again = DataLoader(ds, batch_size=8, shuffle=True, generator=42)
    assert sum(_labels_of(again), []) == epoch1
    assert sum(_labels_of(again), []) == epoch2
    other = DataLoader(ds, batch_size=8, shuffle=True, generator=43)
    assert sum(_labels_of(other), []) != epoch1


def test_default_generator_follows_manual_seed():
    ds = TensorDataset(np.zeros((30, 1)), np.arange(30))
    cnnrs.manual_seed(5)
    first = _labels_of(DataLoader(ds, batch_size=4, shuffle=True))
    cnnrs.manual_seed(5)
    second = _labels_of(DataLoader(ds, batch_size=4, shuffle=True))
    cnnrs.manual_seed(6)
    third = _labels_of(DataLoader(ds, batch_size=4, shuffle=True))
    assert first == second != third


def test_given_numpy_generator_is_used_and_exposed():
    rng = np.random.default_rng(9)
    loader = DataLoader(
        TensorDataset(np.zeros((20, 1)), np.arange(20)), batch_size=5, shuffle=True, generator=rng
    )
    assert loader.generator is rng
    order = sum(_labels_of(loader), [])
    assert order == np.random.default_rng(9).permutation(20).tolist()


@pytest.mark.parametrize("shuffle", [True, False])
def test_resume_mid_epoch_from_saved_state_replays_the_same_batches(shuffle):
    ds = TensorDataset(np.zeros((23, 1)), np.arange(23))
    reference = DataLoader(ds, batch_size=4, shuffle=shuffle, generator=1)
    ref_epochs = [_labels_of(reference) for _ in range(3)]

    run = DataLoader(ds, batch_size=4, shuffle=shuffle, generator=1)
    assert _labels_of(run) == ref_epochs[0]
    got = []
    for _, labels in run:  # epoch 2, interrupted after 2 batches
        got.append(labels.numpy().tolist())
        if len(got) == 2:
            break
    saved = json.loads(json.dumps(run.state_dict()))  # a checkpoint holds plain data
    assert saved["batches_done"] == 2

    resumed = DataLoader(ds, batch_size=4, shuffle=shuffle, generator=999)  # another seed: state wins
    resumed.load_state_dict(saved)
    assert got + _labels_of(resumed) == ref_epochs[1]
    assert _labels_of(resumed) == ref_epochs[2]


def test_resume_with_default_generator_leaves_the_global_stream_alone():
    ds = TensorDataset(np.zeros((12, 1)), np.arange(12))
    cnnrs.manual_seed(0)
    straight = DataLoader(ds, batch_size=5, shuffle=True)
    first = _labels_of(straight)
    saved = straight.state_dict()
    second = _labels_of(straight)
    cnnrs.manual_seed(1)
    before = cnnrs.random.get_rng().bit_generator.state
    resumed = DataLoader(ds, batch_size=5, shuffle=True)
    resumed.load_state_dict(saved)
    assert _labels_of(resumed) == second != first
    assert cnnrs.random.get_rng().bit_generator.state == before


def test_state_before_first_epoch_does_not_touch_the_global_generator():
    ds = TensorDataset(np.zeros((12, 1)), np.arange(12))
    cnnrs.manual_seed(3)
    expected = _labels_of(DataLoader(ds, batch_size=5, shuffle=True))
    cnnrs.manual_seed(3)
    loader = DataLoader(ds, batch_size=5, shuffle=True)
    assert loader.state_dict() == {"generator_state": None, "batches_done": 0}
    loader.load_state_dict(loader.state_dict())
    assert _labels_of(loader) == expected


def test_state_between_epochs_and_bad_state():
    ds = TensorDataset(np.zeros((10, 1)), np.arange(10))
    loader = DataLoader(ds, batch_size=3, shuffle=True, generator=2)
    _labels_of(loader)
    state = loader.state_dict()
    assert state["batches_done"] == 0
    following = _labels_of(loader)
    fresh = DataLoader(ds, batch_size=3, shuffle=True, generator=0)
    fresh.load_state_dict(state)
    assert _labels_of(fresh) == following
    with pytest.raises(ArgumentError, match="batches_done"):
        loader.load_state_dict({"generator_state": None, "batches_done": 5})


def _write_idx(path, array, magic):
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def tiny_mnist_root(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 37), ("t10k", 11)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), 2051)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n), 2049)
    return tmp_path


def _augment(seed):
    return T.Compose(
        [
            T.RandomCrop(28, padding=3, generator=seed),
            T.RandomHorizontalFlip(generator=seed + 1),
            T.Normalize(T.MNIST_MEAN, T.MNIST_STD),
        ]
    )


@pytest.mark.parametrize("transform", [None, "augment"])
def test_batch_path_equals_per_sample_path(tiny_mnist_root, transform):
    def make():
        return MNIST(tiny_mnist_root, transform=_augment(100) if transform else None)

    fast = DataLoader(make(), batch_size=8, shuffle=True, generator=3)
    slow = DataLoader(PerSample(make()), batch_size=8, shuffle=True, generator=3)
    assert fast.uses_batch_path and not slow.uses_batch_path
    for _ in range(2):
        pairs = list(zip(fast, slow))
        assert len(pairs) == 5
        for (fx, fy), (sx, sy) in pairs:
            assert fx.dtype == sx.dtype == np.float32 and fy.dtype == sy.dtype == np.int64
            np.testing.assert_array_equal(fx.numpy(), sx.numpy())
            np.testing.assert_array_equal(fy.numpy(), sy.numpy())


def test_path_selection(tiny_mnist_root):
    x, y = _arrays()
    assert DataLoader(TensorDataset(x, y)).uses_batch_path
    assert not DataLoader(TensorDataset(x, y), collate_fn=default_collate).uses_batch_path
    assert DataLoader(MNIST(tiny_mnist_root, transform=_augment(0))).uses_batch_path
    per_sample_only = MNIST(tiny_mnist_root, transform=T.Lambda(lambda im: im * 2))
    loader = DataLoader(per_sample_only, batch_size=4)
    assert not loader.uses_batch_path
    images, _ = next(iter(loader))
    np.testing.assert_allclose(images.numpy(), per_sample_only.images[:4] * 2)
    assert not DataLoader(MNIST(tiny_mnist_root, target_transform=lambda t: t + 1)).uses_batch_path


def test_subset_keeps_batch_path_and_maps_indices():
    x, y = _arrays(10)
    subset = Subset(TensorDataset(x, y), [7, 2, 5])
    assert len(subset) == 3 and subset[1][1] == y[2]
    loader = DataLoader(subset, batch_size=2)
    assert loader.uses_batch_path
    assert _labels_of(loader) == [[y[7], y[2]], [y[5]]]


def test_random_split_counts_fractions_and_seed():
    ds = TensorDataset(np.zeros((10, 1)), np.arange(10))
    a, b = random_split(ds, [7, 3], generator=0)
    ids = [int(s[i][1]) for s in (a, b) for i in range(len(s))]
    assert (len(a), len(b)) == (7, 3) and sorted(ids) == list(range(10))
    a2, _ = random_split(ds, [7, 3], generator=0)
    assert a.indices.tolist() == a2.indices.tolist()
    parts = random_split(ds, [0.5, 0.3, 0.2], generator=1)
    assert [len(p) for p in parts] == [5, 3, 2]
    uneven = random_split(TensorDataset(np.zeros((11, 1))), [0.5, 0.5], generator=1)
    assert [len(p) for p in uneven] == [6, 5]
    with pytest.raises(ArgumentError, match="summing"):
        random_split(ds, [5, 4])
    with pytest.raises(ArgumentError):
        random_split(ds, [11, -1])


def test_default_collate_structures():
    batch = default_collate([{"x": np.ones(2), "name": "a"}, {"x": np.zeros(2), "name": "b"}])
    assert batch["x"].shape == (2, 2) and batch["x"].dtype == np.float32 and batch["name"] == ["a", "b"]
    pair = default_collate([(1.5, 3), (2.5, 4)])
    assert pair[0].dtype == np.float32 and pair[1].dtype == np.int64
    assert pair[1].numpy().tolist() == [3, 4]
    with pytest.raises(TypeError, match="cannot batch"):
        default_collate([object(), object()])


def test_custom_collate_fn_receives_samples():
    x, y = _arrays(4)
    loader = DataLoader(TensorDataset(x, y), batch_size=2, collate_fn=lambda samples: len(samples))
    assert list(loader) == [2, 2]
