"""Ingest checkpoints: the position in each input up to which every record is delivered.

The file is JSON, replaced atomically (write to a temp file, fsync, rename), so a crash
leaves either the old or the new checkpoint, never a torn one. Inputs are keyed by their real
path (``os.path.realpath``: absolute, symlinks resolved), so ``data/*.txt``, ``./data/a.txt``
and ``/abs/data/a.txt`` are one input, whatever the working directory of the run.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

VERSION = 1


class CheckpointMismatch(Exception):
    """The checkpoint does not belong to this ingest (other topic or a changed input file)."""


@dataclass
class InputState:
    path: str
    size: int
    mtime_ns: int
    line: int = 0        #: lines/rows handled (delivered or reported malformed)
    offset: int = 0      #: byte offset just after ``line`` (text/JSONL)
    done: bool = False


@dataclass
class IngestCheckpoint:
    topic: str
    inputs: dict[str, InputState] = field(default_factory=dict)

    def state_for(self, path: str) -> InputState:
        """The saved state of ``path`` (looked up by its real path), or a fresh one; refuse a
        file that changed."""
        st = os.stat(path)
        real = os.path.realpath(path)
        saved = self.inputs.get(real)
        if saved is None:
            saved = InputState(real, st.st_size, st.st_mtime_ns)
            self.inputs[real] = saved
        elif (saved.size, saved.mtime_ns) != (st.st_size, st.st_mtime_ns):
            raise CheckpointMismatch(
                f"{path} changed since the checkpoint (size/mtime differ); resuming would skip "
                "or repeat records. Remove the checkpoint to ingest it again from the start.")
        return saved

    def stale(self, paths: list[str]) -> list[str]:
        """Saved inputs that match none of ``paths`` (a renamed input, another glob): their
        progress is kept in the file but not used by this run."""
        real = {os.path.realpath(p) for p in paths}
        return sorted(k for k in self.inputs if k not in real)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        data = {"version": VERSION, "topic": self.topic,
                "inputs": [asdict(s) for s in self.inputs.values()]}
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path, topic: str) -> IngestCheckpoint:
        """Load ``path``; a missing file is an empty checkpoint."""
        try:
            data: dict[str, Any] = json.loads(Path(path).read_text())
        except FileNotFoundError:
            return cls(topic)
        if data.get("version") != VERSION:
            raise CheckpointMismatch(f"{path}: unsupported checkpoint version {data.get('version')}")
        if data["topic"] != topic:
            raise CheckpointMismatch(f"{path} is a checkpoint for topic {data['topic']!r}, "
                                     f"not {topic!r}")
        # Older checkpoints keyed inputs as spelled: resolve them (relative to this run's cwd).
        states = [InputState(**{**s, "path": os.path.realpath(s["path"])}) for s in data["inputs"]]
        return cls(topic, {s.path: s for s in states})
