"""MkDocs hook: the pages made from the code at build time, so they cannot drift from it.

- ``<!-- generated: error-codes -->`` becomes the table of every error code, its HTTP
  status and its remedy, read from ``storycore_tasks.errors``.
- ``<!-- generated: openapi -->`` becomes the HTTP API, rendered from the OpenAPI document
  that ``create_app`` serves; the document itself is published beside the page as
  ``openapi.json``. Nothing is fetched from elsewhere.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from functools import cache
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ERROR_CODES_MARKER = "<!-- generated: error-codes -->"
OPENAPI_MARKER = "<!-- generated: openapi -->"
OPENAPI_FILE = "reference/openapi.json"
METHODS = ("get", "post", "put", "patch", "delete")


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Publish the OpenAPI document next to the page that renders it."""
    document = json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
    files.append(File.generated(config, OPENAPI_FILE, content=document))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Replace each marker with the text generated from the code."""
    if ERROR_CODES_MARKER in markdown:
        markdown = markdown.replace(ERROR_CODES_MARKER, error_codes_markdown())
    if OPENAPI_MARKER in markdown:
        markdown = markdown.replace(OPENAPI_MARKER, openapi_markdown(openapi_document()))
    return markdown


# -- error codes ---------------------------------------------------------------------------


def error_codes_markdown() -> str:
    """One row per ``ErrorCodes`` member: its HTTP status and its standard remedy."""
    from storycore_tasks.errors import REMEDIATION_BY_CODE, ErrorCodes, http_status_for

    rows = ["| code | HTTP status | remedy |", "| --- | --- | --- |"]
    for code in ErrorCodes:
        remedy = REMEDIATION_BY_CODE.get(code, "")
        rows.append(f"| `{code.value}` | {http_status_for(code)} | {_remedy_cell(remedy)} |")
    return "\n".join(rows) + "\n"


def _remedy_cell(remedy: object) -> str:
    # A remedy is one text, or one text per surface (Python, CLI, HTTP) where they differ.
    if isinstance(remedy, Mapping):
        return "<br>".join(f"**{surface}**: {_cell(str(text))}" for surface, text in remedy.items())
    return _cell(str(remedy))


def _cell(text: str) -> str:
    """Text for one table cell: one line, its pipes escaped."""
    return _text(text.replace("\n", " ")).replace("|", "\\|")


def _text(text: str) -> str:
    """Text from the code shown as text: `<token>` is not read as an HTML tag (code
    spans are left alone, Markdown shows those as they are)."""
    parts = text.split("`")
    for outside in range(0, len(parts), 2):
        parts[outside] = html.escape(parts[outside], quote=False)
    return "`".join(parts)


# -- the HTTP API --------------------------------------------------------------------------


@cache
def openapi_document() -> dict[str, Any]:
    """The document ``GET /openapi.json`` serves, from an app around a throwaway manager."""
    from storycore_tasks import TaskManager
    from storycore_tasks.service.app import create_app
    from storycore_tasks.service.auth import TokenStore
    from storycore_tasks.service.deps import ServiceConfig

    manager = TaskManager(num_workers=1)
    try:
        app = create_app(manager, ServiceConfig(tokens=TokenStore()))
        try:
            return app.openapi()
        finally:
            app.state.service.close()
    finally:
        manager.shutdown(wait=True, timeout=30)


def openapi_markdown(document: Mapping[str, Any]) -> str:
    """The routes (parameters, body, answers) and then the schemas, as Markdown."""
    info = document.get("info", {})
    out = [
        f"OpenAPI {document.get('openapi', '')}, `{info.get('title', '')}` "
        f"version {info.get('version', '')}. The document itself: "
        f"[openapi.json](openapi.json).",
        "",
    ]
    paths: Mapping[str, Any] = document.get("paths", {})
    by_tag: dict[str, list[tuple[str, str, Mapping[str, Any]]]] = {}
    for path, item in paths.items():
        for method in METHODS:
            if method in item:
                operation = item[method]
                tag = (operation.get("tags") or ["other"])[0]
                by_tag.setdefault(tag, []).append((method, path, operation))
    out += ["## Routes", "", "| method | path | what |", "| --- | --- | --- |"]
    for tag in by_tag:
        for method, path, operation in by_tag[tag]:
            anchor = _route_anchor(method, path)
            out.append(
                f"| {method.upper()} | [`{path}`](#{anchor}) | {_cell(_summary(operation))} |"
            )
    out.append("")
    for tag, routes in by_tag.items():
        out += [f"## {tag.capitalize()}", ""]
        for method, path, operation in routes:
            out += _route_markdown(method, path, operation)
    schemas: Mapping[str, Any] = document.get("components", {}).get("schemas", {})
    if schemas:
        out += ["## Schemas", ""]
        for name, schema in schemas.items():
            out += _schema_markdown(name, schema)
    return "\n".join(out) + "\n"


def _summary(operation: Mapping[str, Any]) -> str:
    text = operation.get("description") or operation.get("summary") or ""
    return str(text).strip().split("\n\n")[0].replace("\n", " ")


def _route_anchor(method: str, path: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in path.strip("/")).strip("-")
    return f"{method}-{slug or 'root'}"


def _schema_anchor(name: str) -> str:
    return "schema-" + "".join(c if c.isalnum() else "-" for c in name)


def _route_markdown(method: str, path: str, operation: Mapping[str, Any]) -> list[str]:
    out = [f"### {method.upper()} `{path}` {{#{_route_anchor(method, path)}}}", ""]
    description = str(operation.get("description") or operation.get("summary") or "").strip()
    if description:
        out += [_text(description), ""]
    parameters = operation.get("parameters", [])
    if parameters:
        out += ["| parameter | in | required | type | meaning |", "| --- | --- | --- | --- | --- |"]
        for parameter in parameters:
            schema = parameter.get("schema", {})
            out.append(
                f"| `{parameter['name']}` | {parameter.get('in', '')} | "
                f"{'yes' if parameter.get('required') else 'no'} | {_type(schema)} | "
                f"{_cell(str(parameter.get('description') or schema.get('description') or ''))} |"
            )
        out.append("")
    body = operation.get("requestBody")
    if body:
        for media, content in body.get("content", {}).items():
            required = " (required)" if body.get("required") else ""
            out += [f"Body{required}: `{media}`, {_type(content.get('schema', {}))}.", ""]
    responses: Mapping[str, Any] = operation.get("responses", {})
    if responses:
        out += ["| status | answer | body |", "| --- | --- | --- |"]
        for status, response in responses.items():
            bodies = ", ".join(
                f"`{media}` {_type(content.get('schema', {}))}"
                for media, content in response.get("content", {}).items()
            )
            out.append(f"| {status} | {_cell(str(response.get('description', '')))} | {bodies} |")
        out.append("")
    return out


def _schema_markdown(name: str, schema: Mapping[str, Any]) -> list[str]:
    out = [f"### {name} {{#{_schema_anchor(name)}}}", ""]
    description = str(schema.get("description", "")).strip()
    if description:
        out += [_text(description), ""]
    properties: Mapping[str, Any] = schema.get("properties", {})
    if properties:
        required = set(schema.get("required", []))
        out += ["| field | type | required | meaning |", "| --- | --- | --- | --- |"]
        for field, spec in properties.items():
            out.append(
                f"| `{field}` | {_type(spec)} | {'yes' if field in required else 'no'} | "
                f"{_cell(str(spec.get('description', '')))} |"
            )
        out.append("")
    elif "enum" in schema:
        values = ", ".join(f"`{value}`" for value in schema["enum"])
        out += [f"One of {values}.", ""]
    else:
        out += [f"{_type(schema)}.", ""]
    return out


def _type(schema: Mapping[str, Any]) -> str:
    """A JSON schema as a short type: `string`, `integer | null`, a link to a schema."""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return f"[{name}](#{_schema_anchor(name)})"
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            joiner = " & " if combinator == "allOf" else " \\| "
            return joiner.join(_type(part) for part in schema[combinator])
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(value)}`" for value in schema["enum"])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    kind = schema.get("type")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        values = schema["additionalProperties"]
        return f"object of {_type(values) if isinstance(values, Mapping) else 'any'}"
    if isinstance(kind, list):
        return " \\| ".join(str(part) for part in kind)
    return str(kind) if kind else "any"
