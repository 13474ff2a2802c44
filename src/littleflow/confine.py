"""What a flow may touch: the directories of its file resources and the addresses
of its HTTP requests (resources and ``http:`` tasks).

A :class:`Confinement` is given to the built-in worker (``--files``, ``--http-allow`` of
``littleflow worker`` and ``serve``) and, when asked for, to ``littleflow run``. Files
are checked on their real path (symlinks and ``..`` resolved), again on the opened
file; HTTP is checked on every address a connection goes to, redirects included,
after resolving the name here, so that a name cannot resolve to one address when
checked and another when connected (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import stat
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from .errors import LittleflowError

if TYPE_CHECKING:
    import ssl

    import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_HOST = re.compile(
    r"(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?", re.IGNORECASE
)


class Refused(LittleflowError):
    """A file or an address outside what the confinement allows; the message says what to allow."""


@dataclass(frozen=True)
class Confinement:
    """Where file resources may be (``files``: real directory paths; ``None``: anywhere,
    empty: nowhere) and which non-public addresses HTTP may reach (``http_allow``: host
    names, addresses and CIDR networks; ``None``: any address). ``owner`` names the
    process in messages (``worker``, ``server``, ``run``)."""

    files: tuple[str, ...] | None = None
    http_allow: tuple[str, ...] | None = None
    owner: str = "worker"
    _hosts: frozenset[str] = field(init=False, repr=False, compare=False)
    _networks: tuple[Any, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.files is not None:
            object.__setattr__(self, "files", tuple(os.path.realpath(root) for root in self.files))
        hosts, networks = set(), []
        for entry in self.http_allow or ():
            network = allowed_entry(entry)
            if isinstance(network, str):
                hosts.add(network)
            else:
                networks.append(network)
        object.__setattr__(self, "_hosts", frozenset(hosts))
        object.__setattr__(self, "_networks", tuple(networks))

    @property
    def unconfined(self) -> bool:
        """Nothing is checked (``littleflow run`` without options)."""
        return self.files is None and self.http_allow is None

    # -- files ---------------------------------------------------------------------
    def path(self, path: str, base: str | None) -> str:
        """The path a file resource reads or writes: confined, its real path inside a root
        (a relative one in the first root); else ``path`` against ``base``. Raises :class:`Refused`."""
        if self.files is None:
            return os.path.join(base or os.getcwd(), path)
        if not self.files:
            raise Refused(f"file resources are off: {self._start()} --files DIR to allow a directory")
        real = os.path.realpath(os.path.join(self.files[0], path))
        self.check_inside(real)
        return real

    def check_inside(self, real: str) -> None:
        """Raise :class:`Refused` unless the real path ``real`` is in a root (unconfined: anywhere)."""
        if self.files is None or any(
            real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in self.files
        ):
            return
        raise Refused(f"outside the directories allowed with --files ({', '.join(self.files)})")

    def opened(self, descriptor: int, path: str, directory: bool = False) -> None:
        """Check a file (or ``directory``) just opened: still inside a root (it may have been
        moved or swapped for a symlink since its path was checked), and, confined, a regular
        file (not a device or a pipe that never ends)."""
        if self.files is None:
            return
        try:
            real = os.readlink(f"/proc/self/fd/{descriptor}")
        except OSError:  # no /proc: the check before opening stands
            real = path
        self.check_inside(real)
        mode = os.fstat(descriptor).st_mode
        if not (stat.S_ISDIR(mode) if directory else stat.S_ISREG(mode)):
            raise Refused(f"not a {'directory' if directory else 'regular file'}")

    def _start(self) -> str:
        return "run with" if self.owner == "run" else f"start the {self.owner} with"

    # -- the network -------------------------------------------------------------------
    def check_address(self, host: str, address: Address) -> None:
        """Raise :class:`Refused` unless a connection to ``host`` may go to ``address``."""
        if self.http_allow is None or host.lower().rstrip(".") in self._hosts:
            return
        if any(
            form in network
            for form in _forms(address)
            for network in self._networks
            if form.version == network.version
        ):
            return
        if not public(address):  # (a name's address is not told: flows could map the private network with it)
            literal = _literal(host) == address
            what = (
                f"{host} is not a public address"
                if literal
                else f"{host} resolves to an address that is not public"
            )
            raise Refused(f"{what}: {self._start()} --http-allow {host} to allow it")

    def checked(self, host: str, found: list[tuple]) -> list[str]:
        """The addresses ``getaddrinfo`` found for ``host``, each checked; raises :class:`Refused`
        if any is refused (a name with one private address is not let through by a public one)."""
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        for address in addresses:
            self.check_address(host, ipaddress.ip_address(address.split("%")[0]))
        return addresses

    def transport(self) -> httpx.BaseTransport:
        """An httpx transport connecting only where this confinement allows."""
        return _transports()[0](self)

    def async_transport(self) -> httpx.AsyncBaseTransport:
        """An async httpx transport connecting only where this confinement allows."""
        return _transports()[1](self)


#: The built-in worker's confinement when nothing is allowed: no files, public addresses only.
LOCKED = Confinement(files=(), http_allow=())
#: No confinement (``littleflow run`` unless asked).
OPEN = Confinement()


def allowed_entry(entry: str) -> str | ipaddress.IPv4Network | ipaddress.IPv6Network:
    """One ``--http-allow`` entry: a network (an address is a network of one) or a host
    name (lower case); raises ``ValueError`` naming it."""
    text = entry.strip()
    try:
        return ipaddress.ip_network(text.strip("[]"), strict=False)
    except ValueError:
        pass
    if _HOST.fullmatch(text) and not text.replace(".", "").isdigit():
        return text.lower().rstrip(".")
    raise ValueError(f"--http-allow {entry!r}: not a host name, an address or a CIDR network like 10.0.0.0/8")


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def public(address: Address) -> bool:
    """Whether ``address`` is a public unicast address, in each of its forms (an IPv4
    address inside IPv6: mapped, 6to4, Teredo, NAT64)."""
    return all(form.is_global and not form.is_multicast for form in _forms(address))


def _forms(address: Address) -> list[Address]:
    forms: list[Address] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            forms.append(address.ipv4_mapped)
        if address.sixtofour:
            forms.append(address.sixtofour)
        if address.teredo:
            forms.extend(address.teredo)
        if address in _NAT64:
            forms.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return forms


@cache
def _ssl_context() -> ssl.SSLContext:
    import httpx

    return httpx.create_ssl_context()


@cache
def _transports() -> tuple[type, type]:
    """The transport classes (made when first needed: only flows that use HTTP import httpx)."""
    import asyncio

    import httpcore
    import httpx

    class _Backend(httpcore.SyncBackend):
        """Connects to the checked addresses of a name, never to what a second lookup says."""

        def __init__(self, confinement: Confinement) -> None:
            self.confinement = confinement

        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Any = None,
        ) -> httpcore.NetworkStream:
            try:
                found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as failed:
                raise httpcore.ConnectError(f"cannot resolve {host}: {failed}") from None
            error: Exception | None = None
            for address in self.confinement.checked(host, found):
                try:
                    return super().connect_tcp(address, port, timeout, local_address, socket_options)
                except httpcore.ConnectError as failed:
                    error = failed
            raise error or httpcore.ConnectError(f"no address for {host}")

    class _AsyncBackend(httpcore.AnyIOBackend):
        def __init__(self, confinement: Confinement) -> None:
            self.confinement = confinement

        async def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Any = None,
        ) -> httpcore.AsyncNetworkStream:
            try:  # (asyncio's lookup, on a thread, can be cancelled: the task's timeout holds)
                found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as failed:
                raise httpcore.ConnectError(f"cannot resolve {host}: {failed}") from None
            error: Exception | None = None
            for address in self.confinement.checked(host, found):
                try:
                    return await super().connect_tcp(address, port, timeout, local_address, socket_options)
                except httpcore.ConnectError as failed:
                    error = failed
            raise error or httpcore.ConnectError(f"no address for {host}")

    class _Transport(httpx.HTTPTransport):
        def __init__(self, confinement: Confinement) -> None:
            # (no proxies from the environment: they would connect for us, unchecked)
            super().__init__(verify=_ssl_context(), trust_env=False)
            self._pool = httpcore.ConnectionPool(
                ssl_context=_ssl_context(), network_backend=_Backend(confinement)
            )

    class _AsyncTransport(httpx.AsyncHTTPTransport):
        def __init__(self, confinement: Confinement) -> None:
            super().__init__(verify=_ssl_context(), trust_env=False)
            # (no limit on connections: each request has its deadline, and the worker's capacity bounds them)
            self._pool = httpcore.AsyncConnectionPool(
                ssl_context=_ssl_context(),
                max_connections=None,
                max_keepalive_connections=16,
                network_backend=_AsyncBackend(confinement),
            )

    return _Transport, _AsyncTransport
