"""``GET /docs`` (and ``/redoc``): the HTTP API's reference as one plain HTML page.

FastAPI's Swagger UI and ReDoc pages load their scripts from a CDN, so they show
nothing on a machine without internet access. This page is rendered on the server from
the service's own OpenAPI document: no script, no file from anywhere else, so it works
offline (and under a strict Content-Security-Policy). The document itself is at
``/openapi.json`` for tools.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

__all__ = ["router"]

router = APIRouter()

_HEADERS = {
    # Nothing from elsewhere, no script at all: only the page's own inline style.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem;
       padding: 0 1rem; color: #1d232b; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ccd; }
section { border: 1px solid #dde; border-radius: 6px; padding: .4rem .9rem; margin: .8rem 0; }
code, pre { font-family: ui-monospace, monospace; font-size: .9em; }
pre { background: #f4f5f8; padding: .6rem; overflow-x: auto; }
.method { font-weight: 700; display: inline-block; min-width: 4.5rem; }
table { border-collapse: collapse; margin: .3rem 0; }
td, th { text-align: left; padding: .15rem .6rem .15rem 0; vertical-align: top; }
th { font-weight: 600; }
"""

_CURL = """\
# with --no-auth, leave out the Authorization header
export TOKEN=...   # storycore-tasks token create --user NAME --tokens tokens.json
curl -s -X POST http://HOST:PORT/v1/tasks \\
  -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \\
  -d '{"operation": "examples.render", "params": {"frames": 20}, "timeout": 60}'
curl -s -H "Authorization: Bearer $TOKEN" http://HOST:PORT/v1/tasks/TASK_ID
curl -s -N -H "Authorization: Bearer $TOKEN" http://HOST:PORT/v1/tasks/TASK_ID/events
curl -s -X POST -H "Authorization: Bearer $TOKEN" http://HOST:PORT/v1/tasks/TASK_ID/cancel"""


@router.get("/docs", include_in_schema=False)
@router.get("/redoc", include_in_schema=False)
def api_docs(request: Request) -> HTMLResponse:
    """The API reference, from the OpenAPI document, needing nothing from elsewhere."""
    return HTMLResponse(render_page(request.app.openapi()), headers=_HEADERS)


def render_page(document: Mapping[str, Any]) -> str:
    """The reference page of an OpenAPI document."""
    info = document.get("info", {})
    title = _text(info.get("title", "API"))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}: HTTP API</title><style>{_STYLE}</style></head><body>",
        f"<h1>{title} {_text(info.get('version', ''))}: HTTP API</h1>",
        f"<p>{_text(info.get('summary', ''))}</p>",
        "<p>Every answer is StoryCore's envelope, <code>{status, data, error, metadata}"
        "</code>, with the HTTP status of its error code. Requests with a body send "
        "<code>Content-Type: application/json</code>; every route but "
        "<code>/healthz</code> needs <code>Authorization: Bearer &lt;token&gt;</code> "
        "unless the service runs with <code>--no-auth</code>. The machine-readable "
        'document is <a href="/openapi.json">/openapi.json</a>.</p>',
        "<h2>With curl</h2>",
        f"<pre>{_text(_CURL)}</pre>",
    ]
    by_tag: dict[str, list[str]] = {}
    for path, methods in document.get("paths", {}).items():
        for method, operation in methods.items():
            tag = (operation.get("tags") or ["other"])[0]
            by_tag.setdefault(tag, []).append(_operation(path, method, operation))
    for tag, sections in by_tag.items():
        parts.append(f"<h2>{_text(tag)}</h2>")
        parts.extend(sections)
    schemas = document.get("components", {}).get("schemas", {})
    if schemas:
        parts.append("<h2>Schemas</h2>")
        parts.extend(_schema(name, schema) for name, schema in schemas.items())
    parts.append("</body></html>")
    return "\n".join(parts)


def _operation(path: str, method: str, operation: Mapping[str, Any]) -> str:
    anchor = _text(f"{method}-{path}")
    lines = [
        f'<section id="{anchor}"><p><span class="method">{_text(method.upper())}</span>'
        f"<code>{_text(path)}</code>: {_text(operation.get('summary', ''))}</p>"
    ]
    if operation.get("description"):
        lines.append(f"<p>{_text(operation['description'])}</p>")
    parameters = operation.get("parameters") or []
    if parameters:
        rows = "".join(
            f"<tr><td><code>{_text(p.get('name'))}</code></td><td>{_text(p.get('in'))}</td>"
            f"<td>{'required' if p.get('required') else 'optional'}</td>"
            f"<td>{_text(_type(p.get('schema', {})))}</td>"
            f"<td>{_text(p.get('description') or p.get('schema', {}).get('description', ''))}"
            "</td></tr>"
            for p in parameters
        )
        lines.append(
            f"<table><tr><th>parameter</th><th>in</th><th></th><th>type</th>"
            f"<th></th></tr>{rows}</table>"
        )
    body = operation.get("requestBody", {}).get("content", {})
    for media, content in body.items():
        lines.append(f"<p>Body ({_text(media)}): {_text(_type(content.get('schema', {})))}</p>")
    responses = operation.get("responses", {})
    if responses:
        rows = "".join(
            f"<tr><td>{_text(code)}</td><td>{_text(answer.get('description', ''))}</td></tr>"
            for code, answer in responses.items()
        )
        lines.append(f"<table><tr><th>status</th><th>answer</th></tr>{rows}</table>")
    lines.append("</section>")
    return "".join(lines)


def _schema(name: str, schema: Mapping[str, Any]) -> str:
    required = set(schema.get("required", ()))
    rows = "".join(
        f"<tr><td><code>{_text(field)}</code></td><td>{_text(_type(spec))}</td>"
        f"<td>{'required' if field in required else _default(spec)}</td>"
        f"<td>{_text(spec.get('description', ''))}</td></tr>"
        for field, spec in _properties(schema)
    )
    table = f"<table>{rows}</table>" if rows else ""
    description = f"<p>{_text(schema['description'])}</p>" if schema.get("description") else ""
    heading = f'<section id="schema-{_text(name)}"><p><b>{_text(name)}</b></p>'
    return f"{heading}{description}{table}</section>"


def _properties(schema: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield from (schema.get("properties") or {}).items()


def _type(schema: Mapping[str, Any]) -> str:
    """A short type of a JSON schema: ``string``, ``CreateTaskRequest``, ``integer | null``."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(_type(s) for s in schema[key])
    kind = schema.get("type")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    return str(kind or "any")


def _default(spec: Mapping[str, Any]) -> str:
    return f"default {_text(json.dumps(spec['default']))}" if "default" in spec else "optional"


def _text(value: Any) -> str:
    return html.escape(str(value), quote=True)
