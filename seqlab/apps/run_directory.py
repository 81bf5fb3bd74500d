"""A `train` command's output directory (OUT): checked before the first step, resumable, seqlab's files only.

Every application's `train` writes into OUT

    settings.json        every setting of the run, written before the first step,
                         marked {"seqlab_run": 1} so that no other settings.json passes for one
    command.txt          the command lines that started and resumed it
    checkpoints/last     the whole run state after each epoch (`fit(resume_from=...)`), and /best
    log.csv              one row per epoch
    model/               the model

beside its report. `prepare` runs before any data loads, so a run is never
thrown away at its end for a bad path:

- OUT that is a file, or a directory of other files that no seqlab run wrote,
  is refused;
- a fresh run into OUT that holds an earlier run is refused unless `overwrite`;
  then that run's own entries (its files, `checkpoints/last` and `/best`;
  nothing else) are set aside in OUT/.replaced-run.saving-PID-RANDOM, put back
  if the new run fails before its first epoch ends, and deleted once the new
  run is done (or, after a kill, by the next start once the new run has a
  checkpoint). Its model stays until the new one is saved over it. So a
  resumed run never mixes two runs. An earlier run that ended no epoch and
  saved no model (it failed on its data, say) is replaced without `overwrite`;
- `resume` needs OUT/settings.json: the run goes on with those settings;
  options given beside `--resume` must agree with them, except those a
  resumed run may change (more epochs, more time).

    >>> run = RunDirectory("runs/imdb", model_dir="runs/imdb/model")
    >>> settings = run.prepare(settings, resume=args.resume, given=given, may_change=("epochs",))
    >>> with run.discarded_on_failure():
    ...     ...  # load the data, fit
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import secrets
import shlex
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from seqlab.files import is_leftover, write_atomically
from seqlab.saving import (CONFIG_FILE, ModelDirectoryError, check_model_directory_writable, is_checkpoint,
                           load_model)

__all__ = ["RunDirectory", "RunDirectoryError", "add_run_options", "interrupted_hint", "load_trained", "record_of",
           "resolve_model_dir"]

SETTINGS_FILE = "settings.json"
RUN_MARKER, RUN_FORMAT = "seqlab_run", 1  # settings.json's first key: a seqlab run wrote it
COMMAND_FILE = "command.txt"
CHECKPOINTS = "checkpoints"
CHECKPOINT_NAMES = ("last", "best")  # what ModelCheckpoint writes into OUT/checkpoints
REPLACED = "replaced-run"  # OUT/.replaced-run.saving-PID-RANDOM: an earlier run set aside by --overwrite
LOG_FILE = "log.csv"
RUN_FLAGS = ("resume", "overwrite", "json")  # store_true flags: recorded only when given


class RunDirectoryError(ValueError):
    """OUT cannot hold this run: a file, someone else's directory, an earlier run, nothing to resume."""


class RunDirectory:
    """OUT of one training run (see the module docstring); `owned` names the app's other files in it."""

    def __init__(self, out: str | os.PathLike, *, model_dir: str | os.PathLike, owned: Iterable[str] = (),
                 check_model_dir: Callable[[Path], Any] = check_model_directory_writable,
                 model_saved: Callable[[Path], bool] = lambda directory: (directory / CONFIG_FILE).is_file()):
        """`check_model_dir` refuses a model directory the run may not write; `model_saved` says one holds a
        result (defaults: a seqlab model directory; the embeddings app passes its vectors' own)."""
        self.out, self.model_dir = Path(out), Path(model_dir)
        self._check_model_dir, self._model_saved = check_model_dir, model_saved
        self.owned = (SETTINGS_FILE, COMMAND_FILE, LOG_FILE, *owned)
        self._fresh, self._set_aside = False, None

    @property
    def checkpoints(self) -> Path:
        return self.out / CHECKPOINTS

    @property
    def log_file(self) -> Path:
        return self.out / LOG_FILE

    def holds_a_run(self) -> bool:
        """Whether OUT/settings.json is one a seqlab run wrote (it carries the `seqlab_run` marker)."""
        return _read_settings(self.out / SETTINGS_FILE) is not None

    def prepare(self, settings: Mapping[str, Any], *, resume: bool, given: Mapping[str, Any] | None = None,
                may_change: Iterable[str] = (), overwrite: bool = False, write: bool = True) -> dict[str, Any]:
        """Check OUT, then write settings.json; returns the run's settings (the saved ones when resuming).

        `settings`: the new run's settings (ignored when resuming); `given`: the
        options the user gave (name -> value; default `settings`), checked
        against a resumed run's. `write=False` (the other processes of a
        distributed run): only read, rank 0 checks and writes.
        """
        given = dict(settings) if given is None else given
        self._fresh = write and not resume
        if not write:
            return self._resumed(given, tuple(may_change)) if resume else dict(settings)
        if self.out.exists() and not self.out.is_dir():
            raise RunDirectoryError(f"--out {self.out} is a file, not a directory. Choose a new directory name, "
                                    "or move the file away.")
        blocking = next((parent for parent in self.out.parents if parent.exists() and not parent.is_dir()), None)
        if blocking is not None:
            raise RunDirectoryError(f"--out {self.out} cannot be made: {blocking} is a file, not a directory. "
                                    "Choose another --out.")
        self._settle_replaced_runs()
        if resume:
            settings = self._resumed(given, tuple(may_change))
        else:
            self._refuse_to_replace(overwrite)
        self._check_model_dir(self.model_dir)
        if not resume:
            self._set_aside = self._set_aside_earlier_run()
        self.out.mkdir(parents=True, exist_ok=True)
        self.record_settings(settings)
        return dict(settings)

    @contextlib.contextmanager
    def discarded_on_failure(self) -> Iterator[None]:
        """Undo `prepare` if what follows fails (bad data, say) before the run's first checkpoint.

        A fresh run's own files go, an earlier run it was replacing
        (`--overwrite`) comes back, and OUT goes too if that leaves it empty, so
        a command refused on its data leaves everything as it found it. When the
        block ends well, the replaced run's files are deleted. A resumed run,
        or one that has ended an epoch, keeps everything; so does Ctrl-C.
        """
        try:
            yield
        except Exception:
            if self._fresh and _epochs_done(self.checkpoints / "last") is None:
                self._remove_run_files()
                self._restore(self._set_aside)
                with contextlib.suppress(OSError):  # not empty: a user's files, or the model directory
                    self.out.rmdir()
            raise
        if self._set_aside is not None:
            shutil.rmtree(self._set_aside, ignore_errors=True)

    def saved_settings(self) -> dict[str, Any] | None:
        """The settings of the run in OUT (None if OUT holds no seqlab run)."""
        return _read_settings(self.out / SETTINGS_FILE)

    def continues(self, resume: bool) -> bool:
        """Whether this run goes on from a checkpoint (a resume with no epoch saved starts over, log included)."""
        return resume and _epochs_done(self.checkpoints / "last") is not None

    def record_settings(self, settings: Mapping[str, Any]) -> None:
        """Rewrite settings.json (a setting known only once the data is read, such as its checksum)."""
        marked = {RUN_MARKER: RUN_FORMAT, **settings}
        write_atomically(self.out / SETTINGS_FILE, (json.dumps(marked, indent=2) + "\n").encode())

    def pin_checksum(self, settings: Any, field: str, digest: str, what: str, *, write: bool = True) -> Any:
        """`settings` (a dataclass) with `digest` recorded as its `field` in settings.json at the run's first
        start; a resumed run whose data have another digest is refused (`what` names the data)."""
        recorded = getattr(settings, field)
        if recorded is None:
            settings = dataclasses.replace(settings, **{field: digest})
            if write:
                self.record_settings(dataclasses.asdict(settings))
        elif recorded != digest:
            raise ValueError(f"The {what} of the run in {self.out} has changed since it started (its SHA-256 "
                             f"differs). A resumed run must read the {what.split(' ')[0]} it started on; restore it, "
                             "or start a new run with another --out.")
        return settings

    def record_command(self, command_line: str, *, append: bool) -> None:
        """Add `command_line` to command.txt (a fresh run starts the file)."""
        previous = (self.out / COMMAND_FILE).read_text() if append and (self.out / COMMAND_FILE).is_file() else ""
        write_atomically(self.out / COMMAND_FILE, (previous + command_line + "\n").encode())

    def _resumed(self, given: Mapping[str, Any], may_change: tuple[str, ...]) -> dict[str, Any]:
        saved = _read_settings(self.out / SETTINGS_FILE)
        if saved is None:
            raise RunDirectoryError(f"Nothing to resume in {self.out}: it holds no {SETTINGS_FILE} of a seqlab "
                                    "run. Start the run without --resume (or give the --out of the run to "
                                    "continue).")
        conflicts = [f"--{name.replace('_', '-')} {value} (the run has {saved.get(name)})"
                     for name, value in given.items()
                     if value is not None and name not in may_change and saved.get(name) != _jsonable(value)]
        if conflicts:
            changeable = ", ".join(f"--{n.replace('_', '-')}" for n in may_change) or "nothing"
            raise RunDirectoryError(
                f"--resume continues the run in {self.out} with its own settings, but {'; '.join(conflicts)}. "
                f"A resumed run may change only {changeable}. Drop the others, or start a new run with "
                "another --out.")
        return {**saved, **{name: _jsonable(given[name]) for name in may_change if given.get(name) is not None}}

    def _refuse_to_replace(self, overwrite: bool) -> None:
        ours = (*self.owned, CHECKPOINTS, self.model_dir.name, REPLACED)
        entries = sorted(p.name for p in self.out.iterdir() if not is_leftover(p.name, ours)) \
            if self.out.is_dir() else []
        if not entries:  # nothing, or only what a run killed in its first write left
            return
        if not self.holds_a_run():
            raise RunDirectoryError(f"Refusing to write a training run into {self.out}: it holds files that no "
                                    f"seqlab run wrote ({', '.join(entries[:5])}). Choose a new or empty directory.")
        epochs = _epochs_done(self.checkpoints / "last")
        something_to_lose = epochs or self._model_saved(self.model_dir)
        if not overwrite and something_to_lose:  # a run that ended no epoch and saved no model: nothing
            raise RunDirectoryError(
                f"{self.out} already holds a training run{f' ({epochs} epoch(s) done)' if epochs else ''}. "
                "Continue it with --resume, replace it with --overwrite, or choose another --out.")

    def _run_entries(self) -> list[Path]:
        """The earlier run's own entries: its files and its checkpoints (a user's files, and the model, stay)."""
        entries = [self.out / name for name in self.owned if (self.out / name).exists()]
        if self.checkpoints.is_dir():
            entries += [path for path in self.checkpoints.iterdir()
                        if (path.name in CHECKPOINT_NAMES and is_checkpoint(path))
                        or is_leftover(path.name, CHECKPOINT_NAMES)]
        return entries

    def _set_aside_earlier_run(self) -> Path | None:
        """Move the earlier run's entries into OUT/.replaced-run.saving-PID-RANDOM until the new run is safe."""
        entries = self._run_entries()
        if not entries:
            return None
        holding = self.out / f".{REPLACED}.saving-{os.getpid()}-{secrets.token_hex(4)}"
        holding.mkdir()
        for path in entries:
            target = holding / path.relative_to(self.out)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(path, target)
        return holding

    def _remove_run_files(self) -> None:
        for path in self._run_entries():
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        with contextlib.suppress(OSError):
            self.checkpoints.rmdir()

    def _restore(self, holding: Path | None) -> None:
        """Put a set-aside run back where it was (nothing of the same name is there any more)."""
        if holding is None or not holding.is_dir():
            return
        for path in holding.iterdir():
            inner = list(path.iterdir()) if path.name == CHECKPOINTS and path.is_dir() else [path]
            for entry in inner:
                target = self.out / entry.relative_to(holding)
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    os.rename(entry, target)
        shutil.rmtree(holding, ignore_errors=True)

    def _settle_replaced_runs(self) -> None:
        """After a kill in an `--overwrite` run: keep the new run if it ended an epoch, else bring the old back."""
        if not self.out.is_dir():
            return
        for holding in self.out.glob(f".{REPLACED}.saving-*"):
            if not is_leftover(holding.name, (REPLACED,)):
                continue
            if _epochs_done(self.checkpoints / "last") is not None:
                shutil.rmtree(holding, ignore_errors=True)
            else:
                self._remove_run_files()
                self._restore(holding)


def add_run_options(parser: argparse.ArgumentParser, may_change: str = "more --epochs or time") -> None:
    """`--resume`, `--overwrite` and `--json`, the same for every `train` command (`may_change`: what a
    resumed run may be given; "" for nothing)."""
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in OUT from its last checkpoint, with its settings"
                             + (f" ({may_change} may be given)" if may_change else ""))
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier run in OUT (its files only; others in OUT stay)")
    parser.add_argument("--json", action="store_true",
                        help="print the run's results as one JSON object on stdout instead of the report "
                             "(progress stays on stderr)")


def record_of(words: list[str], args: argparse.Namespace, skip: Iterable[str] = ()) -> str:
    """The command line `words` + the options of `args` in canonical spelling, for command.txt."""
    parts = list(words)
    for name, value in vars(args).items():
        if name in ("command", "handler", *skip) or value is None or (value is False and name in RUN_FLAGS):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, (list, tuple)):
            parts += [flag, *map(str, value)]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def interrupted_hint(app: str, out: str | os.PathLike) -> str:
    """What a `train` command prints when Ctrl-C stops it: how to go on."""
    last = Path(out) / CHECKPOINTS / "last"
    if _epochs_done(last) is None:
        return (f"Interrupted before the first epoch ended, so no epoch is saved; start again with the same "
                f"command, or with: seqlab {app} train --resume --out {out} (the run's settings, from the start)")
    return (f"Interrupted. The last completed epoch ({_epochs_done(last)}) is saved in {last}; continue "
            f"with: seqlab {app} train --resume --out {out}")


def resolve_model_dir(directory: str | os.PathLike) -> Path:
    """The model directory itself, or OUT/model of a training run's output directory."""
    directory = Path(directory)
    for candidate in (directory, directory / "model"):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    if not directory.is_dir():
        raise ModelDirectoryError(f"No model directory at {directory}: give the --out of a `seqlab ... train` "
                                  "(or its model subdirectory).")
    raise ModelDirectoryError(f"{directory} holds no model: expected {CONFIG_FILE} in it or in "
                              f"{directory / 'model'} (the output of a `seqlab ... train --out DIR`).")


def load_trained(directory: str | os.PathLike, model_class: type | tuple[type, ...], command: str) -> Any:
    """The `model_class` model (or one of a tuple of classes) saved in `directory` (OUT or OUT/model); a
    ValueError when it holds another kind of model, naming `command` (e.g. "seqlab tag train"), which writes
    the right kind."""
    model = load_model(resolve_model_dir(directory), compile=False)
    if not isinstance(model, model_class):
        classes = model_class if isinstance(model_class, tuple) else (model_class,)
        raise ValueError(f"{directory} holds a {type(model).__name__}, not a "
                         f"{' or '.join(c.__name__ for c in classes)}; give a directory written by `{command}`.")
    return model


def _read_settings(path: Path) -> dict[str, Any] | None:
    """The settings in a run's settings.json without its marker; None if it is no seqlab run's."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get(RUN_MARKER) != RUN_FORMAT:
        return None
    return {name: value for name, value in saved.items() if name != RUN_MARKER}


def _epochs_done(checkpoint: Path) -> int | None:
    try:
        return json.loads((checkpoint / "training_state.json").read_text())["epoch"] if is_checkpoint(checkpoint) \
            else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _jsonable(value: Any) -> Any:
    """`value` as settings.json stores it (tuples become lists)."""
    return json.loads(json.dumps(value))
