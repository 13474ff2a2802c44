"""Resources: ``<uri>`` sources and sinks for files and http(s) URLs (LANGUAGE.md §6.2)."""

from __future__ import annotations

import json
import os
import secrets
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urljoin, urlparse

import yaml

from .confine import OPEN, Confinement, Refused
from .errors import LittleflowError
from .literals import MAX_BYTES, LiteralError, load_json_text, load_yaml, plain
from .values import brief

if TYPE_CHECKING:
    import httpx

#: Seconds an http(s) request may take (resources and ``http:`` tasks) unless its ``timeout`` says.
HTTP_TIMEOUT = 30.0
#: The most seconds a ``timeout`` may give an http(s) request; more is cut down to this.
HTTP_MAX_TIMEOUT = 300.0
#: The most bytes a confined resource (an HTTP answer, a file) may hold: what a value may hold.
MAX_CONTENT = MAX_BYTES

_TYPES = {
    "json": ("application/json", "text/json"),
    "yaml": ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"),
    "json-seq": (
        "application/json-seq",
        "application/x-ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
    ),
}
_EXTENSIONS = {
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".jsonseq": "json-seq",
    ".json-seq": "json-seq",
    ".jsonl": "json-seq",
    ".ndjson": "json-seq",
}


class ResourceError(LittleflowError):
    """A resource could not be read or written; the message names the URI."""


def resolve(uri: str, base: str | None) -> str:
    """``uri`` made absolute against ``base`` (a directory or URL; the working directory if none)."""
    if urlparse(uri).scheme in ("http", "https", "file"):
        return uri
    if base and urlparse(base).scheme in ("http", "https"):
        return urljoin(base if base.endswith("/") else base + "/", uri)
    return str(Path(base or os.getcwd(), uri))


def read(uri: str, params: dict[str, Any], base: str | None, confine: Confinement = OPEN) -> Any:
    """The content of a resource as data; ``confine`` says which files and addresses it may be."""
    target = resolve(uri, base)
    if _is_http(target):
        response = _request("GET", target, params, confine)
        return _decoded(uri, target, params, response)
    return _decoded(uri, target, params, _read_file(uri, base, confine))


async def read_http(
    uri: str,
    params: dict[str, Any],
    base: str | None,
    confine: Confinement = OPEN,
    client: httpx.AsyncClient | None = None,
) -> Any:
    """The content of an http(s) resource as data, read with ``client`` (a confined one by default)."""
    target = resolve(uri, base)
    return _decoded(uri, target, params, await _arequest("GET", target, params, confine, client))


def write(uri: str, params: dict[str, Any], base: str | None, value: Any, confine: Confinement = OPEN) -> Any:
    """Write ``value`` to a resource; returns ``value`` unchanged."""
    target = resolve(uri, base)
    kind = _kind(params.get("content-type"), target)
    body = serialize(value, kind)
    if _is_http(target):
        _request(
            str(params.get("method", "PUT")).upper(),
            target,
            params,
            confine,
            content=body.encode(),
            headers={"content-type": _TYPES[kind][0]},
        )
    else:
        _write_file(uri, base, body, confine)
    return value


async def write_http(
    uri: str,
    params: dict[str, Any],
    base: str | None,
    value: Any,
    confine: Confinement = OPEN,
    client: httpx.AsyncClient | None = None,
) -> Any:
    """Write ``value`` to an http(s) resource with ``client``; returns ``value`` unchanged."""
    target = resolve(uri, base)
    kind = _kind(params.get("content-type"), target)
    await _arequest(
        str(params.get("method", "PUT")).upper(),
        target,
        params,
        confine,
        client,
        content=serialize(value, kind).encode(),
        headers={"content-type": _TYPES[kind][0]},
    )
    return value


def is_http(uri: Any, base: str | None) -> bool:
    """Whether the resource ``uri`` is an http(s) URL (itself or against ``base``)."""
    return isinstance(uri, str) and _is_http(resolve(uri, base))


def timeout(params: dict[str, Any], default: float | None = None) -> float:
    """The seconds an HTTP request may take: the ``timeout`` parameter, else ``default``, else
    :data:`HTTP_TIMEOUT`; more than :data:`HTTP_MAX_TIMEOUT` is cut down to it."""
    value = params.get("timeout", default)
    if value is None:
        return HTTP_TIMEOUT
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ResourceError(f"timeout must be a number of seconds > 0, not {brief(value)}")
    return min(float(value), HTTP_MAX_TIMEOUT)


def _decoded(uri: str, target: str, params: dict[str, Any], content: str | httpx.Response) -> Any:
    if isinstance(content, str):
        text, header = content, None
    else:
        text, header = content.text, content.headers.get("content-type")
    kind = _kind(params.get("content-type") or header, target)
    try:
        return parse(text, kind)
    except ValueError as error:
        raise ResourceError(f"cannot read <{uri}> as {kind}: {error}") from None


def _read_file(uri: str, base: str | None, confine: Confinement) -> str:
    try:
        path = confine.path(_path(uri), base)
        # (confined: not following a symlink put in place since the path was checked, nor waiting on a pipe)
        descriptor = os.open(
            path, os.O_RDONLY if confine.files is None else os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
        )
        with open(descriptor, "rb") as file:
            confine.opened(descriptor, path)
            data = file.read() if confine.files is None else file.read(MAX_CONTENT + 1)
        if len(data) > MAX_CONTENT and confine.files is not None:
            raise ResourceError(f"cannot read <{uri}>: it holds more than {MAX_CONTENT / 2**20:g} MiB")
        return data.decode("utf-8")
    except Refused as error:
        raise ResourceError(f"cannot read <{uri}>: {error}") from None
    except OSError as error:
        raise ResourceError(f"cannot read <{uri}>: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ResourceError(f"cannot read <{uri}>: not UTF-8 text") from None


def _write_file(uri: str, base: str | None, body: str, confine: Confinement) -> None:
    """Write through a temporary file in the same directory, renamed over the target:
    readers see the old content or the new, never part. The directory is opened and checked
    once, and both names are taken relative to it, so neither can be steered out of the roots."""
    temporary = directory = None
    try:
        path = confine.path(_path(uri), base)
        parent, name = os.path.split(path)
        os.makedirs(parent or ".", exist_ok=True)
        directory = os.open(parent or ".", os.O_RDONLY | os.O_DIRECTORY)
        confine.opened(directory, parent, directory=True)
        temporary = f".{name}.{secrets.token_hex(4)}"
        descriptor = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666, dir_fd=directory
        )  # (0o666 less the umask, as a plain open() makes it)
        with open(descriptor, "w", encoding="utf-8") as file:
            file.write(body)
        os.replace(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
        temporary = None
    except Refused as error:
        raise ResourceError(f"cannot write <{uri}>: {error}") from None
    except OSError as error:
        raise ResourceError(f"cannot write <{uri}>: {error.strerror or error}") from None
    finally:
        if directory is not None:
            if temporary is not None:
                with suppress(OSError):
                    os.unlink(temporary, dir_fd=directory)
            os.close(directory)


def parse(text: str, kind: str) -> Any:
    """Text of a kind (json, yaml, json-seq) as data; raises ``ValueError``."""
    try:
        if kind == "yaml":
            return load_yaml(text)
        if kind == "json-seq":
            records = text.split("\x1e") if "\x1e" in text else text.splitlines()
            return [load_json_text(record) for record in records if record.strip()]
        return load_json_text(text)
    except LiteralError as error:
        raise ValueError(error.message) from None


def serialize(value: Any, kind: str) -> str:
    """Data as text of a kind (json, yaml, json-seq)."""
    if kind == "yaml":
        return yaml.safe_dump(plain(value), sort_keys=False, allow_unicode=True)
    if kind == "json-seq":
        items = value if isinstance(value, list) else [value]
        return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
    return json.dumps(value, ensure_ascii=False, indent=2) + "\n"


def _kind(content_type: str | None, target: str) -> str:
    if content_type:
        media = content_type.split(";")[0].strip().lower()
        for kind, names in _TYPES.items():
            if media in names:
                return kind
        if media.endswith("+json"):
            return "json"
        if media.endswith("+yaml"):
            return "yaml"
    suffix = Path(urlparse(target).path if _is_http(target) else target).suffix.lower()
    return _EXTENSIONS.get(suffix, "json")


def _is_http(target: str) -> bool:
    return target.startswith(("http://", "https://"))


def _path(uri: str) -> str:
    """The file path of a ``file:`` URI or a path, as written (relative or absolute)."""
    return unquote(urlparse(uri).path) if uri.startswith("file:") else uri


def _request(
    method: str, url: str, params: dict[str, Any], confine: Confinement, **options: Any
) -> httpx.Response:
    import httpx  # only flows with http(s) resources pay for importing it

    transport = None if confine.http_allow is None else confine.transport()
    limit = None if confine.unconfined else MAX_CONTENT
    try:
        with (
            httpx.Client(transport=transport, follow_redirects=True) as client,
            client.stream(method, url, **_options(params, options)) as streamed,
        ):
            response = _whole(streamed, _gathered(streamed.iter_bytes(), method, url, limit))
    except (httpx.HTTPError, Refused) as error:
        raise ResourceError(f"cannot {method} <{url}>: {error}") from None
    return _checked(method, url, response)


async def _arequest(
    method: str,
    url: str,
    params: dict[str, Any],
    confine: Confinement,
    client: httpx.AsyncClient | None,
    **options: Any,
) -> httpx.Response:
    import httpx

    try:
        if client is not None:
            response = await fetch(client, method, url, follow_redirects=True, **_options(params, options))
        else:
            async with httpx.AsyncClient(transport=confine.async_transport()) as own:
                response = await fetch(own, method, url, follow_redirects=True, **_options(params, options))
    except (httpx.HTTPError, Refused) as error:
        raise ResourceError(f"cannot {method} <{url}>: {error}") from None
    return _checked(method, url, response)


async def fetch(
    client: httpx.AsyncClient, method: str, url: str, limit: int | None = None, **options: Any
) -> httpx.Response:
    """The whole answer to a request, of :data:`MAX_CONTENT` bytes at most (``limit``) or
    :class:`ResourceError`: a flow cannot make its worker hold more."""
    async with client.stream(method, url, **options) as streamed:
        body = bytearray()
        async for chunk in streamed.aiter_bytes():
            body += chunk
            _check_size(len(body), method, url, limit or MAX_CONTENT)
        return _whole(streamed, bytes(body))


def _gathered(chunks: Any, method: str, url: str, limit: int | None) -> bytes:
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if limit is not None:
            _check_size(len(body), method, url, limit)
    return bytes(body)


def _check_size(size: int, method: str, url: str, limit: int) -> None:
    if size > limit:
        raise ResourceError(f"{method} <{url}>: the answer holds more than {limit / 2**20:g} MiB")


def _whole(streamed: httpx.Response, body: bytes) -> httpx.Response:
    """A response of ``body`` (already decoded from its content-encoding) as read from ``streamed``."""
    import httpx

    headers = [
        (k, v)
        for k, v in streamed.headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(streamed.status_code, headers=headers, content=body, request=streamed.request)


def _options(params: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    headers = {
        **{str(k): str(v) for k, v in (params.get("headers") or {}).items()},
        **options.pop("headers", {}),
    }
    return {"headers": headers, "timeout": timeout(params), **options}


def _checked(method: str, url: str, response: httpx.Response) -> httpx.Response:
    if response.is_error:
        raise ResourceError(f"{method} <{url}> answered {response.status_code} {response.reason_phrase}")
    return response
