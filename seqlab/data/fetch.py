"""Finding dataset files on disk, or downloading and verifying them.

`find_dataset_file(spec, path)` looks, in this order:

1. `path`, when given (used as is: your own copy, never checksummed unless
   `verify=True`);
2. `$SEQLAB_DATA_DIR` (both `DIR/nsmc/ratings_train.txt` and
   `DIR/ratings_train.txt` count);
3. the user cache, `$SEQLAB_CACHE_DIR` or `~/.cache/seqlab`;
4. the dataset's public address: downloaded into the cache with a progress
   bar, to a `.part` file that a later call resumes, checked against the
   published sha256, then renamed into place (atomic: a file under its final
   name is always complete and verified).

Copies found in 2 or 3 are checked against the sha256 too (~0.1 s per 50 MB):
a checksum mismatch is an error, never a silent fallback to another copy.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO
from urllib.parse import urlparse

from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                           TimeRemainingColumn, TransferSpeedColumn)

DATA_DIR_VARIABLE = "SEQLAB_DATA_DIR"
CACHE_DIR_VARIABLE = "SEQLAB_CACHE_DIR"
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class DatasetFile:
    """Where a dataset file lives: its name in a data folder, address and checksums.

    name: path inside a data folder, e.g. `"nsmc/ratings_train.txt"`.
    url: public download address; when `archive_member` is set, the url is a
        zip archive and the file is that member of it.
    sha256: accepted digests of the file (several when equivalent published
        versions exist).
    extracted_folder: a folder that may stand in for an archive file
        (`"aclImdb"` for `aclImdb_v1.tar.gz`); folders are not checksummed.

    Example:
        spec = DatasetFile("nsmc/ratings_test.txt", "https://.../ratings_test.txt", ("8ac9...",))
        path = find_dataset_file(spec)       # a verified local file
        path = find_dataset_file(spec, path="~/data/ratings_test.txt")
    """

    name: str
    url: str
    sha256: tuple[str, ...]
    archive_member: str | None = None
    extracted_folder: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", _digests(self.sha256))

    def candidates(self, folder: Path) -> Iterator[Path]:
        """The places inside `folder` where this file may be."""
        name = PurePosixPath(self.name)
        prefix = name.parent
        if self.extracted_folder:
            yield folder / prefix / self.extracted_folder
            yield folder / self.extracted_folder
        yield folder / name
        yield folder / name.name


class DatasetNotFoundError(FileNotFoundError):
    """A dataset file is neither on disk nor downloadable."""


class ChecksumError(ValueError):
    """A file's sha256 is not the published one."""


def find_dataset_file(spec: DatasetFile, path: str | os.PathLike[str] | None = None,
                      download: bool = True, progress: bool = True,
                      verify: bool | None = None) -> Path:
    """A local, verified copy of `spec`: `path`, data dir, cache, or a download.

    verify: check files against `spec.sha256`; by default True for copies found
    in the data dir or cache and False for an explicit `path`.
    """
    if path is not None:
        explicit = Path(path).expanduser()
        if not explicit.exists():
            raise DatasetNotFoundError(
                f"{explicit} does not exist (given as path= for {spec.name}); check the path, "
                f"or leave path out to look in ${DATA_DIR_VARIABLE} and the cache"
            )
        if explicit.is_dir():
            explicit = _inside_folder(explicit, spec)
        return _verified(explicit, spec) if verify else explicit
    for folder in search_folders():
        for candidate in spec.candidates(folder):
            if candidate.exists():
                return candidate if verify is False else _verified(candidate, spec)
    destination = cache_dir() / spec.name
    if not download:
        raise DatasetNotFoundError(_missing_message(spec, "downloading is turned off (download=False)"))
    try:
        return _download_spec(spec, destination, progress)
    except DatasetNotFoundError:
        raise
    except OSError as error:  # URLError, HTTPError, timeouts, refused connections
        raise DatasetNotFoundError(_missing_message(spec, f"the download failed: {error}")) from error


def search_folders() -> list[Path]:
    """`$SEQLAB_DATA_DIR` (when set), then the cache folder."""
    folders = []
    if os.environ.get(DATA_DIR_VARIABLE):
        folders.append(Path(os.environ[DATA_DIR_VARIABLE]).expanduser())
    folders.append(cache_dir())
    return folders


def cache_dir() -> Path:
    """`$SEQLAB_CACHE_DIR`, else `~/.cache/seqlab`."""
    return Path(os.environ.get(CACHE_DIR_VARIABLE) or "~/.cache/seqlab").expanduser()


def download(url: str, destination: Path, sha256: str | tuple[str, ...] | None,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """Download `url` to `destination` through a resumable `.part` file.

    A `.part` left by an interrupted download is resumed with an HTTP Range
    request (restarted when the server ignores it). With `sha256` given, a
    mismatching download is deleted and raises `ChecksumError`; a matching one
    is renamed to `destination` atomically.
    """
    expected = _digests(sha256) if sha256 else None
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(destination.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "seqlab"} | ({"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code != 416:  # 416: the .part already holds the whole file
            raise
    else:
        with response:
            resumed = offset > 0 and getattr(response, "status", None) == 206
            _copy_with_progress(response, part, resumed, offset, progress, destination.name)
    if expected:
        _check_sha256(part, expected, source=url, remove=True)
    os.replace(part, destination)
    return destination


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_with_progress(response: IO[bytes], part: Path, resumed: bool, offset: int,
                        progress: bool, label: str) -> None:
    length = response.headers.get("Content-Length")
    start = offset if resumed else 0
    total = int(length) + start if length else None
    columns = (TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar, \
            open(part, "ab" if resumed else "wb") as file:
        task = bar.add_task("download", total=total, completed=start)
        while chunk := response.read(CHUNK_BYTES):
            file.write(chunk)
            bar.advance(task, len(chunk))


def _download_spec(spec: DatasetFile, destination: Path, progress: bool) -> Path:
    if spec.archive_member is None:
        return download(spec.url, destination, spec.sha256, progress)
    # The published file is a zip; its members, not the zip, have known checksums.
    archive_name = PurePosixPath(urlparse(spec.url).path).name or "download.zip"
    archive = download(spec.url, destination.with_name(archive_name), None, progress)
    part = destination.with_name(destination.name + ".part")
    try:
        with zipfile.ZipFile(archive) as zipped, zipped.open(spec.archive_member) as member, \
                open(part, "wb") as file:
            shutil.copyfileobj(member, file, CHUNK_BYTES)
    except KeyError as error:
        raise DatasetNotFoundError(
            f"{spec.url} has no member {spec.archive_member!r}; the archive changed. Put "
            f"{spec.name} in ${DATA_DIR_VARIABLE} or pass path=..."
        ) from error
    finally:
        archive.unlink()
    _check_sha256(part, spec.sha256, source=f"{spec.url} ({spec.archive_member})", remove=True)
    os.replace(part, destination)
    return destination


def _inside_folder(folder: Path, spec: DatasetFile) -> Path:
    """The file of `spec` in a folder given as path=, or the folder when it is the dataset."""
    found = next((c for c in spec.candidates(folder) if c.exists()), None)
    if found is not None:
        return found
    if spec.extracted_folder:
        return folder  # e.g. path="~/data/aclImdb": the extracted dataset itself
    raise DatasetNotFoundError(
        f"{folder} (given as path=) is a folder without {spec.name}; pass the file itself "
        f"or a folder that contains {PurePosixPath(spec.name).name}"
    )


def _verified(path: Path, spec: DatasetFile) -> Path:
    if path.is_file():
        _check_sha256(path, spec.sha256, source=str(path), remove=False)
    return path


def _check_sha256(path: Path, expected: tuple[str, ...], source: str, remove: bool) -> None:
    actual = sha256_of(path)
    if actual in expected:
        return
    if remove:
        path.unlink()
    advice = ("the download was deleted; retry, or download it yourself and pass path=..."
              if remove else
              "the file is corrupt or another version: delete it to download it again, "
              "or pass path=... to use it as it is")
    raise ChecksumError(
        f"sha256 mismatch for {source}: got {actual}, expected {' or '.join(expected)}; {advice}"
    )


def _digests(sha256: str | tuple[str, ...]) -> tuple[str, ...]:
    # A bare string would make `digest in expected` a substring test.
    digests = (sha256,) if isinstance(sha256, str) else tuple(sha256)
    malformed = [d for d in digests if len(d) != 64 or not all(c in "0123456789abcdef" for c in d)]
    if not digests or malformed:
        raise ValueError(f"sha256 digests must be 64 lowercase hex characters; got {malformed or digests}")
    return digests


def _missing_message(spec: DatasetFile, reason: str) -> str:
    data_dir = os.environ.get(DATA_DIR_VARIABLE)
    where = f"${DATA_DIR_VARIABLE} ({data_dir})" if data_dir else f"${DATA_DIR_VARIABLE} (not set)"
    return (
        f"dataset file {spec.name} was not found in {where} or the cache ({cache_dir()}) and "
        f"{reason}. Download it from {spec.url}, then put it in ${DATA_DIR_VARIABLE} "
        f"as {spec.name} or pass path=..."
    )
