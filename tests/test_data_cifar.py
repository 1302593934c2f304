"""CIFAR-10 reader on small files written in the official format, archive extraction, corrupt files."""

import functools
import hashlib
import http.server
import io
import pickle
import struct
import tarfile
import threading

import numpy as np
import pytest

from cnnrs.data import CIFAR10, ChecksumError, DataLoader, DatasetError, DatasetNotFoundError
from cnnrs.data.safe_pickle import safe_load

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


# ------------------------------------------------ a Python 2 protocol-2 pickler, as the official files


def _py2_pickle(obj):
    """Pickle dicts / lists / ints / bytes (Python 2 str) / uint8 arrays the way Python 2's
    cPickle.dump(obj, f, 2) with numpy 1.x writes them (SHORT_BINSTRING/BINSTRING for str,
    numpy.core.multiarray._reconstruct for arrays)."""
    out = io.BytesIO()
    w = out.write

    def string(b):
        w(b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<I", len(b)) + b)

    def integer(v):
        w(b"J" + struct.pack("<i", v))

    def emit(value):
        if isinstance(value, dict):
            w(b"}(")
            for k, v in value.items():
                emit(k)
                emit(v)
            w(b"u")
        elif isinstance(value, list):
            w(b"](")
            for v in value:
                emit(v)
            w(b"e")
        elif isinstance(value, bytes):
            string(value)
        elif isinstance(value, int):
            integer(value)
        elif isinstance(value, np.ndarray):
            w(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
            integer(0)
            w(b"\x85")
            string(b"b")
            w(b"\x87R(")  # _reconstruct(ndarray, (0,), 'b'), then the state tuple
            integer(1)
            for d in value.shape:
                integer(d)
            w(b"\x86")
            w(b"cnumpy\ndtype\n")
            string(b"u1")
            w(b"\x89\x88\x87R(")  # dtype('u1', False, True), then its state
            integer(3)
            string(b"|")
            w(b"NNN")
            integer(-1)
            integer(-1)
            integer(0)
            w(b"tb\x89")  # BUILD dtype; fortran_order False
            string(value.tobytes())
            w(b"tb")  # BUILD array
        else:
            raise TypeError(type(value))

    w(b"\x80\x02")
    emit(obj)
    w(b".")
    return out.getvalue()


def test_py2_pickler_matches_what_the_real_unpickler_reads():
    data = np.arange(12, dtype=np.uint8).reshape(2, 6)
    loaded = pickle.loads(_py2_pickle({b"data": data, b"labels": [3, 1]}), encoding="latin1")
    np.testing.assert_array_equal(loaded["data"], data)
    assert loaded["labels"] == [3, 1]


# ------------------------------------------------ writing a tiny CIFAR-10 root


def _batch(n, seed, label_offset=0):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [(i + label_offset) % 10 for i in range(n)]
    return {b"batch_label": b"batch", b"labels": labels, b"data": data, b"filenames": [b"x.png"] * n}


def _batch_files(n=4, python3=False):
    """{filename: bytes} for every batch plus batches.meta."""
    dump = (lambda o: pickle.dumps(o, protocol=2)) if python3 else _py2_pickle
    files = {name: dump(_batch(n, seed=i, label_offset=i)) for i, name in enumerate(BATCHES)}
    meta = {b"num_cases_per_batch": n, b"label_names": [s.encode() for s in NAMES], b"num_vis": 3072}
    files["batches.meta"] = dump(meta)
    return files


def _write_root(root, files):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def _archive_bytes(files, extra=None):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra or ():
            tar.addfile(info)
    return buffer.getvalue()


@pytest.mark.parametrize("python3", [False, True])
def test_reads_official_layout(tmp_path, python3):
    _write_root(tmp_path, _batch_files(n=4, python3=python3))
    train = CIFAR10(tmp_path, train=True)
    assert len(train) == 20 and train.split == "Train"
    assert train.data.shape == (20, 32, 32, 3) and train.data.dtype == np.uint8
    assert train.targets.dtype == np.int64 and train.classes == NAMES
    expected_rows = np.concatenate([_batch(4, seed=i)[b"data"] for i in range(5)])
    # official row layout: 1024 red, 1024 green, 1024 blue, each 32x32 row-major
    np.testing.assert_array_equal(train.data[..., 1], expected_rows[:, 1024:2048].reshape(20, 32, 32))
    assert train.targets.tolist() == [(i + b) % 10 for b in range(5) for i in range(4)]
    image, label = train[5]
    assert image.shape == (3, 32, 32) and image.dtype == np.float32 and label == train.targets[5]
    np.testing.assert_array_equal(image, expected_rows[5].reshape(3, 32, 32).astype(np.float32) / 255)
    np.testing.assert_array_equal(train.images[5], image)
    test = CIFAR10(tmp_path, train=False)
    assert len(test) == 4 and test.targets.tolist() == [5, 6, 7, 8]


def test_replacing_data_keeps_layouts_in_step(tmp_path):
    _write_root(tmp_path, _batch_files(n=4))
    ds = CIFAR10(tmp_path)
    first = ds.images[:3].copy()
    ds.data, ds.targets = ds.data[:3], ds.targets[:3]  # torchvision-style subsetting, HWC in
    assert len(ds) == 3 and ds.data.shape == (3, 32, 32, 3) and ds.images.shape == (3, 3, 32, 32)
    np.testing.assert_array_equal(ds.images, first)
    np.testing.assert_array_equal(ds[2][0], first[2])


def test_loader_batches_cifar(tmp_path):
    _write_root(tmp_path, _batch_files(n=4))
    loader = DataLoader(CIFAR10(tmp_path), batch_size=8, shuffle=True, generator=0)
    assert loader.uses_batch_path
    shapes = [tuple(x.shape) for x, _ in loader]
    assert shapes == [(8, 3, 32, 32), (8, 3, 32, 32), (4, 3, 32, 32)]


def test_extracts_from_the_archive(tmp_path):
    files = _batch_files(n=2)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(_archive_bytes(files))
    ds = CIFAR10(tmp_path, train=False)
    assert len(ds) == 2
    folder = tmp_path / "cifar-10-batches-py"
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)
    assert (folder / "data_batch_3").read_bytes() == files["data_batch_3"]


def test_archive_without_a_member_or_with_a_link_or_corrupt(tmp_path):
    files = _batch_files(n=2)
    archive = tmp_path / "cifar-10-python.tar.gz"
    partial = dict(files)
    del partial["data_batch_4"]
    archive.write_bytes(_archive_bytes(partial))
    with pytest.raises(DatasetError, match="member cifar-10-batches-py/data_batch_4 is missing"):
        CIFAR10(tmp_path)

    partial = dict(files)
    del partial["test_batch"]
    link = tarfile.TarInfo("cifar-10-batches-py/test_batch")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    archive.write_bytes(_archive_bytes(partial, extra=[link]))
    with pytest.raises(DatasetError, match="not a regular file"):
        CIFAR10(tmp_path, train=False)

    archive.write_bytes(_archive_bytes(files)[:200])
    with pytest.raises(DatasetError, match="archive"):
        CIFAR10(tmp_path)


def test_missing_everything_names_paths(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        CIFAR10(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_1") in message
    assert "batches.meta" in message and "cifar-10-python.tar.gz" in message


def _with_batch(tmp_path, name, data):
    files = _batch_files(n=3)
    files[name] = data
    _write_root(tmp_path, files)


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda b: _py2_pickle(b)[:-500], "not a readable pickle"),
        (lambda b: _py2_pickle({b"data": b[b"data"]}), "expected a dict with 'data' and 'labels'"),
        (lambda b: _py2_pickle({**b, b"data": np.zeros((3, 100), np.uint8)}), r"\(n, 3072\)"),
        (lambda b: _py2_pickle({**b, b"labels": [0, 1, 10]}), r"labels must be in \[0, 9\]"),
        (lambda b: _py2_pickle({**b, b"labels": [0, 1]}), "3 images but 2 labels"),
        (lambda b: _py2_pickle({**b, b"labels": [b"a", b"b", b"c"]}), "list of ints"),
        (lambda b: b"not a pickle at all", "not a readable pickle"),
        (lambda b: pickle.dumps({"data": np.zeros((3, 3072), np.float32)}, protocol=2), "dtype"),
    ],
)
def test_corrupt_batches_raise_clearly(tmp_path, make, pattern):
    _with_batch(tmp_path, "data_batch_2", make(_batch(3, seed=0)))
    with pytest.raises(DatasetError, match=pattern):
        CIFAR10(tmp_path)


def test_numpy_integer_labels_are_read_as_ints(tmp_path):
    batch = _batch(3, seed=0)
    batch[b"labels"] = [np.int64(7), np.uint8(2), np.int32(9)]
    _with_batch(tmp_path, "data_batch_1", pickle.dumps(batch, protocol=2))
    assert CIFAR10(tmp_path).targets[:3].tolist() == [7, 2, 9]


def test_bad_meta(tmp_path):
    files = _batch_files(n=2)
    files["batches.meta"] = _py2_pickle({b"label_names": [b"a"] * 9})
    _write_root(tmp_path, files)
    with pytest.raises(DatasetError, match="10 class names"):
        CIFAR10(tmp_path)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"data": _Exploit(marker)})
    with pytest.raises(DatasetError, match="refusing to load global"):
        safe_load(payload, "evil")
    assert not marker.exists()
    with pytest.raises(DatasetError, match="refusing"):
        safe_load(pickle.dumps(print), "evil")  # a builtin is not allowed either


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_archive_from_local_mirror(tmp_path, monkeypatch):
    files = _batch_files(n=2)
    archive = _archive_bytes(files)
    served = tmp_path / "served"
    served.mkdir()
    (served / "cifar-10-python.tar.gz").write_bytes(archive)
    handler = functools.partial(_QuietHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        mirror = f"http://127.0.0.1:{httpd.server_address[1]}/"
        with pytest.raises(ChecksumError, match="c58f30108f718f92721af3b95e74349a"):
            CIFAR10(tmp_path / "a", download=True, mirror=mirror)  # not the official archive
        assert list((tmp_path / "a").iterdir()) == []
        monkeypatch.setattr(CIFAR10, "archive", ("cifar-10-python.tar.gz", hashlib.md5(archive).hexdigest()))
        ds = CIFAR10(tmp_path / "b", download=True, mirror=mirror)
        assert len(ds) == 10 and (tmp_path / "b" / "cifar-10-python.tar.gz").read_bytes() == archive
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
