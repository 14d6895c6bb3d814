"""Keep the embedded sandbox's gallery between runs: `dpg-mcp --sandbox --sandbox-state DIR`.

Without it the sandbox resets whenever it stops. With it, the store is written to DIR when the server stops
(Ctrl-C, end of input) and read back at the next start, so captions, sets and links made in one run are there
in the next (links stay valid with the same `--sandbox-port`: they are signed, and name the port).
The file is a pickle of the sandbox's own records: only load a directory you made.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from .app import Sandbox
from .store import Store

STATE_FILE = "dpg-sandbox-state.pickle"


def state_path(directory: str | os.PathLike[str]) -> Path:
    return Path(directory).expanduser() / STATE_FILE


def load_into(sb: Sandbox, directory: str | os.PathLike[str]) -> bool:
    """Replace the sandbox's seed gallery with the one saved in `directory`; False when none was saved."""
    path = state_path(directory)
    if not path.is_file():
        return False
    with path.open("rb") as fh:
        store = pickle.load(fh)
    if not isinstance(store, Store):
        raise ValueError(f"{path} does not hold a sandbox gallery")
    store.search_index = None  # derived data is rebuilt on first use
    store._sets_of = None
    store.changed()
    sb.engine.store = store
    return True


def save(sb: Sandbox, directory: str | os.PathLike[str]) -> Path:
    """Write the sandbox's gallery to `directory` (created if needed), atomically."""
    path = state_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    store = sb.engine.store
    index, sets_of = store.search_index, store._sets_of
    store.search_index, store._sets_of = None, None  # derived: not worth the bytes
    try:
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            pickle.dump(store, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)
    finally:
        store.search_index, store._sets_of = index, sets_of
    return path
