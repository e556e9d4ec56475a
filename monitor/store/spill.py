"""Spill files: results the database could not take yet, on disk until it can (see `ResultWriter`).

One JSONL line per result: ``{"region", "confirm", "result": ProbeResult.to_dict() minus the
answer}``. Files are named ``spill-<pid>-<id>.jsonl`` while written; a writer claims a file to
replay by renaming it ``replay-<its pid>-<id>.jsonl`` (rename is atomic, so two writers never
replay the same file), and records its progress in ``<name>.pos`` after each committed batch.
Rows the database refuses as invalid go to ``rejected-<pid>.rejected``, never replayed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from probes.result import ErrorKind, ProbeResult, Status

log = logging.getLogger("airisk.store")
_RESULT_FIELDS = {f.name for f in fields(ProbeResult)} - {"answer"}
# Files some live writer of this process owns. Any other file of this pid is an orphan (left by
# a writer that closed while the database was away), which the next writer to start replays.
_OWNED: set[Path] = set()

Item = tuple[ProbeResult, bool, str]  # result, confirm, region


def encode(result: ProbeResult, *, confirm: bool, region: str) -> str:
    data = {k: v for k, v in result.to_dict().items() if k in _RESULT_FIELDS}
    return json.dumps({"region": region, "confirm": confirm, "result": data}, separators=(",", ":")) + "\n"


def decode(line: str) -> Item:
    doc = json.loads(line)
    data = {k: v for k, v in doc["result"].items() if k in _RESULT_FIELDS}
    data.update(at=datetime.fromisoformat(data["at"]), status=Status(data["status"]),
                error_kind=ErrorKind(data["error_kind"]))
    return ProbeResult(**data), bool(doc["confirm"]), doc["region"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


class SpillFiles:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.to_replay: list[Path] = []  # closed files of ours, and claimed orphans, oldest first
        self._file: IO[str] | None = None
        self._path: Path | None = None

    @property
    def has_work(self) -> bool:
        return self._file is not None or bool(self.to_replay)

    def append(self, text: str, *, keep_open: bool = True) -> None:
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._path = self.directory / f"spill-{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
            _OWNED.add(self._path)
            self._file = self._path.open("a", encoding="utf-8")
        self._file.write(text)
        self._file.flush()  # in the OS's hands: survives our own crash
        if not keep_open:  # written by a closed writer: an orphan at once, for the next one
            self.release()

    def rotate(self) -> None:
        """Closes the file being written; it joins the replay queue, new rows go to a new file."""
        if self._file is not None:
            assert self._path is not None
            self._file.close()
            self.to_replay.append(self._path)
            self._file = self._path = None

    def release(self) -> None:
        """On close: what is left unreplayed becomes an orphan for the next writer."""
        self.rotate()
        _OWNED.difference_update(self.to_replay)

    def claim_orphans(self) -> None:
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("*.jsonl")):
            kind, _, rest = path.stem.partition("-")
            pid = rest.partition("-")[0]
            if kind not in ("spill", "replay") or not pid.isdigit() or path in _OWNED:
                continue
            if int(pid) != os.getpid() and _alive(int(pid)):
                continue
            mine = path.with_name(f"replay-{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl")
            _OWNED.add(mine)
            try:
                path.rename(mine)
            except FileNotFoundError:  # another writer claimed it first
                _OWNED.discard(mine)
                continue
            with contextlib.suppress(FileNotFoundError):
                path.with_suffix(".pos").rename(mine.with_suffix(".pos"))
            log.info("result writer: replaying %s left by process %s", path.name, pid)
            self.to_replay.append(mine)

    def read(self, path: Path, n: int) -> tuple[list[Item], int, bool]:
        """Up to ``n`` rows from where the last replay stopped: (rows, new offset, at end)."""
        pos = path.with_suffix(".pos")
        offset = int(pos.read_text() or 0) if pos.exists() else 0
        items: list[Item] = []
        with path.open("rb") as f:
            f.seek(offset)
            while len(items) < n and (raw := f.readline()):
                offset += len(raw)
                try:
                    items.append(decode(raw.decode("utf-8")))
                except (ValueError, KeyError, TypeError) as exc:  # a torn last line after a crash
                    log.error("result writer: unreadable line in %s skipped: %s", path, exc)
            at_end = not f.read(1)
        return items, offset, at_end

    def advance(self, path: Path, offset: int, at_end: bool) -> None:
        """Called after the rows read were committed."""
        if at_end:
            path.unlink()
            path.with_suffix(".pos").unlink(missing_ok=True)
            _OWNED.discard(path)
            self.to_replay.remove(path)
        else:
            path.with_suffix(".pos").write_text(str(offset))

    def reject(self, item: tuple[Any, bool, str], exc: BaseException) -> None:
        result, confirm, region = item
        try:
            doc: dict[str, Any] = json.loads(encode(result, confirm=confirm, region=region))
        except Exception:  # not even a ProbeResult
            doc = {"repr": repr(result)[:2000]}
        doc["error"] = str(exc)[:500]
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / f"rejected-{os.getpid()}.rejected").open("a", encoding="utf-8") as f:
            f.write(json.dumps(doc) + "\n")
        log.error("result writer: a row the database refused was set aside in %s: %s", self.directory, exc)
