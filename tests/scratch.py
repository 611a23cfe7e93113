"""Folders for clusters a test runs of its own (a replica, a restore), beside the suite's cluster."""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def cluster_folder(name: str) -> Iterator[Path]:
    """A new folder under /tmp, deleted afterwards. Not under pytest's tmp_path: every pytest run
    makes its user's root of those private again, and a cluster's server (the postgres user when
    the tests run as root) must reach its own folders for as long as it runs."""
    folder = Path(tempfile.mkdtemp(prefix=f"anwang-{name}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
