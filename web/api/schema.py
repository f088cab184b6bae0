"""The API's OpenAPI document, made from the code: Flask's routes give the paths and
methods, `@spec` on a view gives its request and response models (web/api/models.py),
and the same request model validates the body before the view runs.

A small registry instead of a framework (flask-openapi3, spectree): the endpoints
stay plain Flask views that concurrent work can keep editing, and adding a spec
is one decorator line.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, g, request
from pydantic import BaseModel, RootModel, TypeAdapter, ValidationError

from paas import __version__
from paas.errors import BadRequest, InvalidInput
from web.api import models

F = TypeVar("F", bound=Callable[..., Any])
REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Spec:
    body: Any = None  # a pydantic model (or RootModel) the JSON body must match
    response: Any = None  # a type: a model, list[Model], dict[str, str]...
    status: int = 200
    media_type: str = "application/json"
    query: dict[str, dict] | None = None  # name -> JSON schema of a query parameter
    validate: bool = True  # False: documented only (the view reads the body elsewhere too)
    ranges: tuple[str, ...] = ()  # a list that takes `Range` (web/api/paging.py): its fields


#: view name (the endpoint without "api.") -> its spec
SPECS: dict[str, Spec] = {}


def spec(body: Any = None, response: Any = None, status: int = 200, *,
         media_type: str = "application/json", query: dict[str, dict] | None = None,
         validate: bool = True, ranges: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Declare a view's request and response; put it under the `@api.<method>` line.
    `ranges`: the fields a list view's `Range` header may sort by."""

    def register(view: F) -> F:
        SPECS[view.__name__] = Spec(body, response, status, media_type, query, validate,
                                    ranges)
        if body is None or not validate:
            return view

        @functools.wraps(view)
        def validated(*args: Any, **kwargs: Any) -> Any:
            if "name" in kwargs:
                # On an app, who may act comes first: app_for_request validates the body
                # once the caller passed the permission check, so a body error never
                # answers for an app the caller may not see or change.
                g.pending_body = body
            else:
                validate_body(body)
            return view(*args, **kwargs)

        return validated  # type: ignore[return-value]

    return register


def validate_body(model: type[BaseModel]) -> None:
    """Refuse a body that is not JSON (400) or does not match `model` (422)."""
    raw = request.get_data(cache=True)
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    try:
        model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(_message(exc)) from None


def _message(exc: ValidationError) -> str:
    """The first problem as one line a person can act on: where, then what."""
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"unknown field {where!r}; see /api/openapi.json for what this takes"
    text = error["msg"][0].lower() + error["msg"][1:]
    return f"{where}: {text}" if where else f"the request body: {text}"


# --- the document ------------------------------------------------------------------------
_ARG = re.compile(r"<(?:(?P<conv>[a-z]+):)?(?P<name>[a-z_]+)>")


def _schema_of(kind: Any, components: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema for a type; models go to components and are referenced."""
    if isinstance(kind, type) and issubclass(kind, BaseModel) and not issubclass(
            kind, RootModel):
        if kind.__name__ not in components:
            schema = kind.model_json_schema(ref_template=REF)
            components.update(schema.pop("$defs", {}))
            components[kind.__name__] = schema
        return {"$ref": REF.format(model=kind.__name__)}
    schema = TypeAdapter(kind).json_schema(ref_template=REF)
    components.update(schema.pop("$defs", {}))
    return schema


def _document_ranges(operation: dict[str, Any], fields: tuple[str, ...],
                     error: dict[str, Any]) -> None:
    """A list that pages: the `Range` it takes, and its 206 and 416 answers."""
    field = "|".join(fields)
    operation["parameters"] = [*operation["parameters"], {
        "name": "Range", "in": "header", "required": False,
        "description": f"`{fields[0]} ..; max=200`, `{fields[0]} ]LAST..; max=200, "
                       f"order=desc`: sorted by one of {', '.join(fields)}, at most max "
                       "(1-1000), after LAST (`]`) or from it; see docs/api.md",
        "schema": {"type": "string", "pattern": (
            rf"^({field}) \]?[a-z0-9.@_-]{{0,20}}\.\.[a-z0-9.@_-]{{0,20}}"
            r"(; max=[0-9]{1,4}(, order=(asc|desc))?)?$")},
    }]
    success = next(iter(operation["responses"].values()))
    content = success["content"]
    page_headers = {
        "Accept-Ranges": {"description": "the fields a Range may sort by",
                          "schema": {"type": "string"}},
        "Content-Range": {"description": "the first and last item's values, `name a..m`",
                          "schema": {"type": "string"}},
    }
    success["headers"] = page_headers
    operation["responses"] = {
        **operation["responses"],
        "206": {"description": "a page with more after it: send Next-Range for the next",
                "headers": {**page_headers, "Next-Range": {
                    "description": "the Range of the next page", "required": True,
                    "schema": {"type": "string"}}},
                "content": content},
        "416": {"description": "a Range this list cannot answer",
                "content": {"application/json": {"schema": error}}},
    }


def openapi(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of the `api` blueprint."""
    components: dict[str, Any] = {}
    error = _schema_of(models.Error, components)
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.endpoint.startswith("api.") or not rule.rule.startswith("/api/"):
            continue
        name = rule.endpoint.removeprefix("api.")
        view = app.view_functions[rule.endpoint]
        found = SPECS.get(name, Spec())
        path = _ARG.sub(lambda m: "{" + m.group("name") + "}", rule.rule)
        parameters = [
            {"name": m.group("name"), "in": "path", "required": True,
             "schema": {"type": "integer"} if m.group("conv") == "int" else {"type": "string"}}
            for m in _ARG.finditer(rule.rule)
        ] + [{"name": q, "in": "query", "required": False, "schema": s}
             for q, s in (found.query or {}).items()]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation: dict[str, Any] = {
                "operationId": name,
                "summary": (view.__doc__ or name.replace("_", " ")).strip().splitlines()[0],
                "tags": [path.split("/")[2]],
                "parameters": parameters,
                "responses": {
                    str(found.status): {
                        "description": "success",
                        "content": {found.media_type: {
                            "schema": _schema_of(found.response, components)
                            if found.response is not None else {}}},
                    },
                    "default": {"description": "an error",
                                "content": {"application/json": {"schema": error}}},
                },
            }
            if found.ranges:
                _document_ranges(operation, found.ranges, error)
            if found.body is not None:
                operation["requestBody"] = {"required": False, "content": {
                    "application/json": {"schema": _schema_of(found.body, components)}}}
            if rule.endpoint == "api.health":
                operation["security"] = []
            elif rule.endpoint == "api.create_token":
                operation["security"] = [{"bearer": []}, {"basic": []}]
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "paas API", "version": __version__,
                 "description": "Shaped like the Heroku Platform API; see docs/api.md."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic",
                          "description": "name and password; only POST /api/account/tokens"},
            },
        },
        "security": [{"bearer": []}],
    }
