"""Checksummed, resumable downloads and safe archive extraction.

fastMRI archives are tens of GB: a download streams to ``<dest>.part``, resumes it with an HTTP
``Range`` request after an interruption, and is renamed to ``<dest>`` only once its SHA-256 matches
the configured checksum. Extraction refuses absolute paths, ``..`` components, links and device
files before anything is written, and extracts into a temporary directory that is renamed into
place only when every member is out.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import Callable
from urllib.parse import urlparse

import requests

from .util import current_umask

CHUNK = 1 << 20


class ChecksumError(RuntimeError):
    pass


class UnsafeArchiveError(RuntimeError):
    pass


def sha256sum(path: str | os.PathLike, chunk: int = CHUNK) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def archive_name(url: str) -> str:
    """The file name a URL is stored under (its last path component)."""
    name = PurePosixPath(urlparse(url).path).name
    if not name or name in (".", ".."):
        raise ValueError(f"cannot derive a file name from URL {url!r}")
    return name


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str,
    *,
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest``, resuming a partial ``dest.part``; verify SHA-256 before use.

    ``file://`` URLs and plain local paths are copied (useful for mirrors on shared storage).
    Raises ChecksumError (and deletes the partial file) if the content does not match.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = sha256.lower()
    if dest.is_file():
        if sha256sum(dest) == expected:
            return dest
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        shutil.copyfile(parsed.path if parsed.scheme else url, part)
    elif parsed.scheme in ("http", "https"):
        offset = part.stat().st_size if part.is_file() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        with requests.get(url, stream=True, timeout=timeout, headers=headers) as r:
            if r.status_code == 416:  # the partial file is already complete
                pass
            else:
                r.raise_for_status()
                if offset and r.status_code != 206:  # server ignored Range: start over
                    offset = 0
                total = r.headers.get("Content-Length")
                total = int(total) + offset if total is not None else None
                with open(part, "ab" if offset else "wb") as f:
                    done = offset
                    for block in r.iter_content(CHUNK):
                        f.write(block)
                        done += len(block)
                        if progress:
                            progress(done, total)
    else:
        raise ValueError(f"unsupported URL scheme {parsed.scheme!r} in {url!r}")
    actual = sha256sum(part)
    if actual != expected:
        part.unlink()
        raise ChecksumError(f"{url}: SHA-256 mismatch: expected {expected}, got {actual}; the download was deleted")
    os.replace(part, dest)
    return dest


def check_members(archive: str | os.PathLike, members: list[tarfile.TarInfo]) -> None:
    """Refuse absolute paths, '..' components, links and anything that is not a file or directory."""
    for m in members:
        p = PurePosixPath(m.name)
        if p.is_absolute() or m.name.startswith(("/", "\\")):
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} has an absolute path")
        if ".." in p.parts:
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} contains '..'")
        if m.issym() or m.islnk():
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a link (to {m.linkname!r})")
        if not (m.isfile() or m.isdir()):
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} is not a regular file or directory")


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Extract a tar archive (any compression) into ``dest``; returns the extracted files.

    Every member is checked before anything is written; the extraction goes to a temporary
    directory beside ``dest`` that replaces ``dest`` only when it is complete.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        check_members(archive, members)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; the umask's mode, as mkdir would
        try:
            tar.extractall(tmp, members=members, filter="data")
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return sorted(dest / m.name for m in members if m.isfile())
