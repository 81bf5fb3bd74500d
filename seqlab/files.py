"""The files seqlab writes: atomically, with the user's umask, and only its own.

`write_atomically(path, data)` writes one file: the bytes go to a temporary file
beside it, are fsynced, and replace it in one rename, so a crash leaves the old
file or the new one, never half of one (and the next write of that file
removes the temporary a killed writer left).

`owned_directory(directory, owned)` writes a directory of which seqlab owns
only some names (a model directory owns config.json, model.safetensors, ...):
it yields an empty staging directory for the owned files, then

    1. hard-links every other entry of the existing directory into the staging one,
    2. swaps the two in one atomic rename (Linux `renameat2(RENAME_EXCHANGE)`),
    3. moves into the new version whatever the old one still holds that the new one
       lacks (sub-directories, files created in between), and removes the rest.

So a reader sees the old version or the new one, and a user's `NOTES.md` (or
`summary.json`, or `checkpoints/`) in the directory stays. A crash between 2 and
3 leaves those entries in the staging directory; the next write there moves
them back before it deletes abandoned staging directories.

Nothing here overwrites what seqlab does not own: `check_writable_directory`
refuses a path that is a regular file, and a non-empty directory that `is_ours`
does not recognize, naming the fix. Directories and files are created with
modes 0o777 and 0o666 minus the umask, as `mkdir` and `open` would.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import re
import secrets
import shutil
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator

__all__ = ["OwnershipError", "backup_path", "check_writable_directory", "is_leftover", "owned_directory",
           "write_atomically", "write_new_file"]


class OwnershipError(ValueError):
    """seqlab was asked to write over something it did not write."""


def write_atomically(path: str | os.PathLike, data: bytes) -> None:
    """Write one file so that a crash leaves the old file or the new one, never half of one."""
    path = Path(path)
    if path.is_dir():
        raise OwnershipError(f"Cannot write the file {path}: a directory of that name exists. "
                             "Choose another path, or move the directory away.")
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_temporaries(path)
    temporary = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        write_new_file(temporary, data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    fsync_directory(path.parent)


def is_leftover(name: str, owned: Iterable[str]) -> bool:
    """Whether `name` is what a write of one of the `owned` names left when killed.

    That is a temporary file (`.config.json.PID-RANDOM.tmp`), a staging
    directory (`.last.saving-PID-RANDOM`) or a parked old version
    (`.last.previous`) of an owned name. Such entries are seqlab's own: they
    never make a directory foreign, and the next write of that name removes
    them. A user's dotfile of another name is never one.
    """
    match = _LEFTOVER.fullmatch(name)
    return match is not None and match.group(1) in set(owned)


_LEFTOVER = re.compile(r"\.(.+)\.(?:\d+-[0-9a-f]{8}\.tmp|saving-\d+-[0-9a-f]{8}|previous)", re.DOTALL)


def check_writable_directory(directory: str | os.PathLike, is_ours: Callable[[Path], bool], what: str,
                             owned: Iterable[str] = ()) -> Path:
    """Refuse (OwnershipError) a `directory` seqlab may not write: a file, or a foreign non-empty directory.

    `is_ours(directory)` says whether an existing non-empty directory is one seqlab
    wrote (a model directory has a seqlab config.json); `what` names it in messages.
    Leftovers of killed writes of the `owned` names do not count (`is_leftover`).
    """
    owned = frozenset(owned)
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise OwnershipError(f"Refusing to write {what} to {directory}: it is a file, not a directory. "
                             "Choose a new directory name, or move the file away.")
    present = sorted(p.name for p in directory.iterdir() if not is_leftover(p.name, owned))[:5] \
        if directory.is_dir() else []
    if present and not is_ours(directory):
        raise OwnershipError(f"Refusing to write {what} into {directory}: it holds other files ({', '.join(present)}"
                             f"{', ...' if len(present) == 5 else ''}) and is not {what} seqlab wrote. "
                             "Choose a new or empty directory.")
    return directory


@contextlib.contextmanager
def owned_directory(directory: str | os.PathLike, owned: Iterable[str]) -> Iterator[Path]:
    """Yield an empty staging directory; on success it becomes `directory`, keeping the entries not `owned`.

    See the module docstring. On any exception (Ctrl-C included) the staging
    directory is removed and `directory` is left as it was.
    """
    directory, owned = Path(directory), frozenset(owned)
    directory.parent.mkdir(parents=True, exist_ok=True)
    _recover_abandoned_staging(directory, owned)
    staging = directory.parent / f"{_staging_prefix(directory)}{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        yield staging
        _link_others(directory, staging, owned)
        fsync_directory(staging)
        _swap_in(staging, directory)
        _move_missing(staging, directory, owned)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new_file(path: Path, data: bytes) -> None:
    """Create `path` (it must not exist), write `data` and fsync it; mode 0o666 less the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _staging_prefix(directory: Path) -> str:
    return f".{directory.name}.saving-"


def _link_others(directory: Path, staging: Path, owned: frozenset[str]) -> None:
    """Hard-link the existing directory's files seqlab does not own into the staging directory."""
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        if entry.name in owned or is_leftover(entry.name, owned) or not entry.is_file() or entry.is_symlink():
            continue  # directories and links are moved across after the swap; leftovers are dropped
        with contextlib.suppress(OSError):  # no hard links here: moved after the swap instead
            os.link(entry, staging / entry.name)


def _move_missing(old: Path, new: Path, owned: frozenset[str]) -> None:
    """Move each entry of `old` that seqlab does not own and `new` lacks into `new`."""
    if not old.is_dir():
        return
    for entry in old.iterdir():
        if (entry.name not in owned and not is_leftover(entry.name, owned) and not (new / entry.name).exists()
                and not (new / entry.name).is_symlink()):
            os.rename(entry, new / entry.name)


def _recover_abandoned_staging(directory: Path, owned: frozenset[str]) -> None:
    """Give back what a crashed write left in its staging directory, then delete that directory."""
    for stale in directory.parent.glob(_staging_prefix(directory) + "*"):
        pid = stale.name[len(_staging_prefix(directory)):].split("-", 1)[0]
        if not pid.isdigit() or _process_alive(int(pid)):
            continue
        if directory.is_dir():
            _move_missing(stale, directory, owned)
        shutil.rmtree(stale, ignore_errors=True)


def _remove_abandoned_temporaries(path: Path) -> None:
    """Delete the temporaries of `path` that writers killed mid-write left (their process is gone)."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = stale.name[len(path.name) + 2:].split("-", 1)[0]
        if is_leftover(stale.name, {path.name}) and pid.isdigit() and not _process_alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def backup_path(directory: Path) -> Path:
    """Where a save without an atomic exchange parks the old version for a moment."""
    return directory.parent / f".{directory.name}.previous"


def _swap_in(staging: Path, directory: Path) -> None:
    """Make `staging` become `directory`; afterwards `staging` holds the old version (or nothing)."""
    if not directory.exists():
        os.rename(staging, directory)
    elif not _exchange(staging, directory):
        backup = backup_path(directory)
        shutil.rmtree(backup, ignore_errors=True)
        os.rename(directory, backup)
        os.rename(staging, directory)
        os.rename(backup, staging)
    fsync_directory(directory.parent)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange)
    return result == 0
