"""Bearer tokens: each with a scope, ``read`` (look) or ``admin`` (look and change);
kept only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
from pathlib import Path

from ..private import private_file

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
                raise ValueError(
                    f"{where}: entry {number} must be read:TOKEN or admin:TOKEN, "
                    "with a token of 16 characters or more"
                )
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
        token = _bearer_token(authorization)
        return None if token is None else self.scope(token)

    def holder(self, authorization: str | None) -> str:
        """Who sends an ``Authorization`` header, to count what each token holds open: a
        short digest of its token."""
        return _digest(_bearer_token(authorization) or "")[:16]

    def scope(self, token: str) -> str | None:
        """The scope of ``token``, or ``None`` if it is not one of ours."""
        digest = _digest(token)
        found = None
        for known, scope in self._digests:  # (every one compared: no timing hint of which matched)
            if hmac.compare_digest(known, digest) and found is None:
                found = scope
        return found


def _bearer_token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


#: The file of the token ``littleflow serve`` makes when none is configured, in its data directory.
TOKEN_FILE = "api.token"
#: Host names that are always this server's: only a page of this machine can send them.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def local_token(directory: Path) -> str | None:
    """The admin token ``serve`` keeps in ``directory``, if there is a sound one: a private
    file (no rights for group or others) owned by this user, holding a long enough token."""
    try:
        descriptor = os.open(directory / TOKEN_FILE, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(descriptor, encoding="utf-8") as file:
        info = os.fstat(file.fileno())
        if info.st_mode & 0o077 or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
            return None  # (readable by others: it may have leaked, so it is replaced)
        token = file.read(1024).strip()
    return token if re.fullmatch(r"[A-Za-z0-9_-]{32,}", token) else None


def ensure_local_token(directory: Path) -> str:
    """The admin token kept in ``directory``: the one there if sound, else a new one, written
    to a file that is private (mode 0600) from the moment it exists."""
    token = local_token(directory)
    if token is not None:
        return token
    token = secrets.token_urlsafe(32)
    directory.mkdir(parents=True, exist_ok=True)
    private_file(directory / TOKEN_FILE, token + "\n")
    return token


def host_name(header: str) -> str:
    """The name of a ``Host`` header, without its port, in lower case (``[::1]:80`` → ``::1``);
    ``""`` if it is not a host name or address with an optional port."""
    match = re.fullmatch(r"(?:\[([0-9a-f:.]+)\]|([^\[\]:/@\s]+))(?::\d{1,5})?", header.strip().lower())
    return "" if match is None else (match.group(1) or match.group(2)).rstrip(".")


def is_loopback(name: str) -> bool:
    """Whether ``name`` (a host name or an address) can only mean this machine."""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def own_hosts(bound: str | None, names: list[str] | tuple[str, ...] = ()) -> frozenset[str]:
    """The names a ``Host`` header may give for a server bound to ``bound``: the loopback
    names, the bound address (unless it is 0.0.0.0 or ::) and ``names``."""
    hosts = {*LOOPBACK_NAMES, *(host_name(name) for name in names)}
    if bound and bound not in ("0.0.0.0", "::", ""):
        hosts.add(host_name(bound if ":" not in bound or bound.startswith("[") else f"[{bound}]"))
    return frozenset(hosts - {""})


def names_server(header: str | None, hosts: frozenset[str]) -> bool:
    """Whether a ``Host`` header names this server: one of ``hosts``, or a loopback address."""
    name = host_name(header or "")
    return bool(name) and (name in hosts or is_loopback(name))
