"""Checksummed, resumable downloads from a loopback HTTP server, and safe tar extraction."""

import hashlib
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from robustcs.download import ChecksumError, UnsafeArchiveError, download, safe_extract


class _RangeHandler(BaseHTTPRequestHandler):
    payload = b""
    ranges: list = []

    def do_GET(self):  # noqa: N802
        data = type(self).payload
        rng = self.headers.get("Range")
        type(self).ranges.append(rng)
        start = 0
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _RangeHandler.payload = bytes(range(256)) * 4096  # 1 MiB
    _RangeHandler.ranges = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/data.tar", _RangeHandler
    httpd.shutdown()
    httpd.server_close()


def test_download_verifies_checksum(tmp_path, server):
    url, handler = server
    sha = hashlib.sha256(handler.payload).hexdigest()
    out = download(url, tmp_path / "data.tar", sha)
    assert out.read_bytes() == handler.payload
    # a second call finds the verified file and downloads nothing
    download(url, tmp_path / "data.tar", sha)
    assert len(handler.ranges) == 1


def test_download_resumes_partial_file(tmp_path, server):
    url, handler = server
    sha = hashlib.sha256(handler.payload).hexdigest()
    part = tmp_path / "data.tar.part"
    part.write_bytes(handler.payload[:300_000])
    out = download(url, tmp_path / "data.tar", sha)
    assert handler.ranges == ["bytes=300000-"]
    assert out.read_bytes() == handler.payload
    assert not part.exists()


def test_checksum_mismatch_leaves_nothing(tmp_path, server):
    url, _ = server
    with pytest.raises(ChecksumError, match="SHA-256 mismatch"):
        download(url, tmp_path / "data.tar", "0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_local_file_url(tmp_path):
    src = tmp_path / "mirror.bin"
    src.write_bytes(b"abc" * 1000)
    out = download(src.as_uri(), tmp_path / "dl" / "copy.bin", hashlib.sha256(src.read_bytes()).hexdigest())
    assert out.read_bytes() == src.read_bytes()


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, extra in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(extra)
                tar.addfile(info, io.BytesIO(extra))
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, extra
                tar.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, extra
                tar.addfile(info)
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
                tar.addfile(info)
    return path


def test_safe_extract_good_archive(tmp_path):
    arch = _tar(tmp_path / "ok.tar.gz", [("multicoil_val/file1.h5", "file", b"x" * 10), ("multicoil_val/file2.h5", "file", b"y")])
    files = safe_extract(arch, tmp_path / "out")
    assert [f.name for f in files] == ["file1.h5", "file2.h5"]
    assert (tmp_path / "out" / "multicoil_val" / "file1.h5").read_bytes() == b"x" * 10


@pytest.mark.parametrize(
    "member,words",
    [
        (("/etc/evil", "file", b"x"), "absolute path"),
        (("a/../../evil", "file", b"x"), "'..'"),
        (("link", "symlink", "/etc/passwd"), "is a link"),
        (("hard", "hardlink", "a/file"), "is a link"),
        (("pipe", "fifo", None), "not a regular file"),
    ],
)
def test_safe_extract_refuses_unsafe_members(tmp_path, member, words):
    arch = _tar(tmp_path / "bad.tar.gz", [("a/file", "file", b"ok"), member])
    with pytest.raises(UnsafeArchiveError, match=words):
        safe_extract(arch, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.tar.gz"]
