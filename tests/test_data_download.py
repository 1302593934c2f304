"""Downloads against a local http.server: md5 check, atomic write, skip when valid, clear errors."""

import functools
import gzip
import hashlib
import http.server
import socket
import struct
import threading

import numpy as np
import pytest

from cnnrs.data import MNIST, ChecksumError, DownloadError, FashionMNIST
from cnnrs.data.download import download_file, resolve_base_url


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the test's folder; /truncated promises more bytes than it sends."""

    requests = []

    def do_GET(self):
        type(self).requests.append(self.path)
        if self.path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            return
        super().do_GET()

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def server(tmp_path):
    """(base URL, served folder, list of requested paths) of a server on 127.0.0.1."""
    served = tmp_path / "served"
    served.mkdir()
    handler = type("Handler", (_Handler,), {"requests": []})
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(served))
    )
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", served, handler.requests
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _refused_url():
    """A URL on a port where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _md5(data):
    return hashlib.md5(data).hexdigest()


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_good_file_is_written_and_verified(server, tmp_path):
    url, served, _ = server
    (served / "file.bin").write_bytes(b"payload" * 1000)
    dest = tmp_path / "out" / "file.bin"
    download_file(url + "file.bin", dest, _md5(b"payload" * 1000))
    assert dest.read_bytes() == b"payload" * 1000
    assert _leftovers(dest.parent) == []


def test_wrong_md5_raises_and_leaves_nothing_behind(server, tmp_path):
    url, served, _ = server
    (served / "file.bin").write_bytes(b"tampered")
    dest = tmp_path / "out" / "file.bin"
    with pytest.raises(ChecksumError, match="expected 0+"):
        download_file(url + "file.bin", dest, "0" * 32)
    assert not dest.exists() and _leftovers(dest.parent) == []
    dest.write_bytes(b"older good copy")  # an existing file survives a failed download
    with pytest.raises(ChecksumError):
        download_file(url + "file.bin", dest, "0" * 32)
    assert dest.read_bytes() == b"older good copy"


def test_http_404_names_url_and_status(server, tmp_path):
    url, _, _ = server
    with pytest.raises(DownloadError, match=r"missing\.bin failed: HTTP 404") as info:
        download_file(url + "missing.bin", tmp_path / "missing.bin", None)
    assert isinstance(info.value, OSError)
    assert not (tmp_path / "missing.bin").exists() and _leftovers(tmp_path) == []


def test_connection_dropped_midway(server, tmp_path):
    url, _, _ = server
    with pytest.raises(DownloadError, match="truncated"):
        download_file(url + "truncated", tmp_path / "t.bin", None)
    assert not (tmp_path / "t.bin").exists() and _leftovers(tmp_path) == []


def test_no_network_gives_a_clear_message(tmp_path):
    url = _refused_url()
    with pytest.raises(DownloadError, match="could not download .*network connection") as info:
        MNIST(tmp_path / "mnist", download=True, mirror=url)
    message = str(info.value)
    assert url + "train-images-idx3-ubyte.gz" in message
    assert "copy train-images-idx3-ubyte.gz into" in message and "CNNRS_DATA" in message
    assert list((tmp_path / "mnist").iterdir()) == []


def _serve_mnist(folder, n=6, seed=0):
    """Write a tiny MNIST-format train split into folder; return {filename: md5}."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    files = {
        "train-images-idx3-ubyte.gz": struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes(),
        "train-labels-idx1-ubyte.gz": struct.pack(">II", 2049, n) + labels.tobytes(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    md5s = {}
    for name, raw in files.items():
        data = gzip.compress(raw)
        (folder / name).write_bytes(data)
        md5s[name] = _md5(data)
    return md5s, images, labels


def _patch_md5s(monkeypatch, cls, md5s):
    monkeypatch.setattr(cls, "train_files", tuple((name, md5s[name]) for name, _ in cls.train_files))


def test_dataset_download_then_skip_when_valid(server, tmp_path, monkeypatch):
    url, served, requests = server
    md5s, images, labels = _serve_mnist(served / "mnist")
    _patch_md5s(monkeypatch, MNIST, md5s)
    root = tmp_path / "root"
    ds = MNIST(root, download=True, mirror=url + "mnist/")
    np.testing.assert_array_equal(ds.data, images)
    np.testing.assert_array_equal(ds.targets, labels)
    assert len(requests) == 2
    MNIST(root, download=True, mirror=url + "mnist/")  # files present and valid: no request
    assert len(requests) == 2
    (root / "train-labels-idx1-ubyte.gz").write_bytes(b"damaged")  # invalid: fetched again
    MNIST(root, download=True, mirror=url + "mnist/")
    assert requests[2:] == ["/mnist/train-labels-idx1-ubyte.gz"]
    assert _leftovers(root) == []


def test_mirror_from_environment(server, tmp_path, monkeypatch):
    url, served, requests = server
    md5s, images, _ = _serve_mnist(served / "fashion-mnist", seed=1)
    _patch_md5s(monkeypatch, FashionMNIST, md5s)
    monkeypatch.setenv("CNNRS_DATA_MIRROR", url.rstrip("/"))
    monkeypatch.setenv("CNNRS_DATA", str(tmp_path / "data"))
    ds = FashionMNIST(download=True)
    assert ds.root == tmp_path / "data" / "fashion-mnist"
    np.testing.assert_array_equal(ds.data, images)
    assert sorted(requests) == [
        "/fashion-mnist/train-images-idx3-ubyte.gz",
        "/fashion-mnist/train-labels-idx1-ubyte.gz",
    ]


def test_dataset_download_with_wrong_md5_keeps_root_clean(server, tmp_path):
    url, served, _ = server
    _serve_mnist(served / "mnist")  # served files are not the official ones: md5 mismatch
    root = tmp_path / "root"
    with pytest.raises(ChecksumError, match="f68b3c2dcbeaaa9fbdd348bbdeb94873"):
        MNIST(root, download=True, mirror=url + "mnist/")
    assert list(root.iterdir()) == []


def test_resolve_base_url_precedence(monkeypatch):
    official = "https://example.org/data"
    monkeypatch.delenv("CNNRS_DATA_MIRROR", raising=False)
    assert resolve_base_url(None, "mnist", official) == "https://example.org/data/"
    monkeypatch.setenv("CNNRS_DATA_MIRROR", "http://mirror.local/")
    assert resolve_base_url(None, "mnist", official) == "http://mirror.local/mnist/"
    assert resolve_base_url("http://arg/x", "mnist", official) == "http://arg/x/"
