"""Resources: ``<uri>`` sources and sinks for files and http(s) URLs (LANGUAGE.md §6.2)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urljoin, urlparse

import yaml

from .literals import LiteralError, load_json_text, load_yaml, plain

if TYPE_CHECKING:
    import httpx

#: Seconds an http(s) resource may take.
HTTP_TIMEOUT = 30.0

_TYPES = {
    "json": ("application/json", "text/json"),
    "yaml": ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"),
    "json-seq": ("application/json-seq", "application/x-ndjson", "application/jsonl", "application/x-jsonlines",
                 "application/jsonlines"),
}
_EXTENSIONS = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".jsonseq": "json-seq", ".json-seq": "json-seq",
               ".jsonl": "json-seq", ".ndjson": "json-seq"}


class ResourceError(Exception):
    """A resource could not be read or written; the message names the URI."""


def resolve(uri: str, base: str | None) -> str:
    """``uri`` made absolute against ``base`` (a directory or URL; the working directory if none)."""
    if urlparse(uri).scheme in ("http", "https", "file"):
        return uri
    if base and urlparse(base).scheme in ("http", "https"):
        return urljoin(base if base.endswith("/") else base + "/", uri)
    return str(Path(base or os.getcwd(), uri))


def read(uri: str, params: dict[str, Any], base: str | None) -> Any:
    """The content of a resource as data."""
    target = resolve(uri, base)
    if _is_http(target):
        response = _request("GET", target, params)
        text, header = response.text, response.headers.get("content-type")
    else:
        path = _path(target, base)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ResourceError(f"cannot read <{uri}>: {error.strerror or error}") from None
        except UnicodeDecodeError:
            raise ResourceError(f"cannot read <{uri}>: not UTF-8 text") from None
        header = None
    kind = _kind(params.get("content-type") or header, target)
    try:
        return parse(text, kind)
    except ValueError as error:
        raise ResourceError(f"cannot read <{uri}> as {kind}: {error}") from None


def write(uri: str, params: dict[str, Any], base: str | None, value: Any) -> Any:
    """Write ``value`` to a resource; returns ``value`` unchanged."""
    target = resolve(uri, base)
    kind = _kind(params.get("content-type"), target)
    body = serialize(value, kind)
    if _is_http(target):
        headers = {"content-type": _TYPES[kind][0]}
        _request(str(params.get("method", "PUT")).upper(), target, params, content=body.encode(), headers=headers)
        return value
    path = _path(target, base)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False,
                                         prefix=f".{path.name}.") as file:
            temporary = file.name
            file.write(body)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as a plain open() would have made it
        os.replace(temporary, path)
    except OSError as error:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)
        raise ResourceError(f"cannot write <{uri}>: {error.strerror or error}") from None
    return value


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


def _path(target: str, base: str | None) -> Path:
    if target.startswith("file:"):
        path = Path(unquote(urlparse(target).path))
        return path if path.is_absolute() else Path(base or os.getcwd(), path)
    return Path(target)


def _request(method: str, url: str, params: dict[str, Any], **options: Any) -> httpx.Response:
    import httpx  # only flows with http(s) resources pay for importing it

    headers = {**{str(k): str(v) for k, v in (params.get("headers") or {}).items()}, **options.pop("headers", {})}
    try:
        response = httpx.request(method, url, headers=headers, timeout=params.get("timeout", HTTP_TIMEOUT),
                                 follow_redirects=True, **options)
    except httpx.HTTPError as error:
        raise ResourceError(f"cannot {method} <{url}>: {error}") from None
    if response.is_error:
        raise ResourceError(f"{method} <{url}> answered {response.status_code} {response.reason_phrase}")
    return response
