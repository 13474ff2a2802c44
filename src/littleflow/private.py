"""Files for this user's eyes only (the API's token, the private Redis server's password),
and where they are kept: :func:`littleflow_home`."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

#: The variable that moves :func:`littleflow_home`.
HOME_VAR = "LITTLEFLOW_HOME"


def littleflow_home() -> Path:
    """Where ``littleflow serve`` keeps a private server's data and the files that find it
    (``redis.url``): ``$LITTLEFLOW_HOME``, else ``~/.littleflow``."""
    return Path(os.environ.get(HOME_VAR) or os.path.expanduser("~/.littleflow"))


def private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by this user alone (mode 0600 from the moment the
    file exists), replacing any file there at once."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)  # left by a crash of an earlier process of this pid
    descriptor = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
