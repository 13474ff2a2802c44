"""Bearer tokens: each with a scope, ``read`` (look) or ``admin`` (look and change);
kept only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path

SCOPES = ("read", "admin")
#: Where tokens come from: ``scope:token`` entries, separated by commas or lines.
TOKENS_VAR = "LITTLEFLOW_API_TOKENS"


class Tokens:
    """The tokens the API accepts, as digests with their scopes."""

    def __init__(self, entries: list[tuple[str, str]]) -> None:
        self._digests = [(_digest(token), scope) for scope, token in entries]

    @classmethod
    def parse(cls, text: str, where: str) -> Tokens:
        """Tokens from ``scope:token`` entries; ``ValueError`` (naming ``where``) for a bad one."""
        entries = []
        for number, entry in enumerate(re.split(r"[,\n]", text), 1):
            entry = re.sub(r"(^|\s)#.*$", "", entry).strip()  # a comment: # at the start or after a space
            if not entry:
                continue
            scope, colon, token = entry.partition(":")
            if not colon or scope not in SCOPES or len(token) < 16:
                raise ValueError(f"{where}: entry {number} must be read:TOKEN or admin:TOKEN, "
                                 "with a token of 16 characters or more")
            entries.append((scope, token))
        return cls(entries)

    @classmethod
    def configured(cls, file: str | None = None) -> Tokens:
        """The tokens of ``file`` (if given) and of ``$LITTLEFLOW_API_TOKENS``."""
        tokens = cls.parse(os.environ.get(TOKENS_VAR, ""), f"${TOKENS_VAR}")
        if file is not None:
            try:
                text = Path(file).read_text(encoding="utf-8")
            except OSError as error:
                raise ValueError(f"cannot read the tokens file {file}: {error.strerror}") from None
            tokens._digests += cls.parse(text, file)._digests
        return tokens

    def __bool__(self) -> bool:
        return bool(self._digests)

    def bearer(self, authorization: str | None) -> str | None:
        """The scope of the token of an ``Authorization: Bearer TOKEN`` header, or ``None``."""
        scheme, _, token = (authorization or "").partition(" ")
        return self.scope(token.strip()) if scheme.lower() == "bearer" else None

    def scope(self, token: str) -> str | None:
        """The scope of ``token``, or ``None`` if it is not one of ours."""
        digest = _digest(token)
        found = None
        for known, scope in self._digests:  # (every one compared: no timing hint of which matched)
            if hmac.compare_digest(known, digest) and found is None:
                found = scope
        return found


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
