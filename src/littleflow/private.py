"""Files for this user's eyes only: the API's token, the private Redis server's password."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by this user alone (mode 0600 from the moment the
    file exists), replacing any file there at once."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)  # left by a crash of an earlier process of this pid
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
