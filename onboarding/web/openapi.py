"""What ``/openapi.json`` says beyond what FastAPI reads from the routes' signatures.

Most public routes read their query string and body by hand, so that one ``400`` or ``422``
names every bad field in coexist's own words; FastAPI then sees no parameters and no body.
These helpers declare them all the same, through each route's ``openapi_extra`` and
``responses``:

* :func:`secured` — which bearer token a route takes (:data:`SECURITY_SCHEMES`);
* :func:`query` — a query parameter and its constraints as the handler enforces them;
* :func:`json_body` — a JSON request body by its pydantic model;
* :func:`errors` — the error answers a route gives, each ``application/problem+json``;
* :func:`document` — the whole document, built once per app.

FastAPI documents a ``422`` of its own shape (``HTTPValidationError``) for every route with
parameters; the app answers those as problems (``invalid_request``), and a route whose
parameters are all text, without a body, never gives one, so :func:`document` says that.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.utils import get_flat_params
from fastapi.routing import APIRoute
from pydantic import BaseModel

from onboarding.web.schemas import PROBLEM_REF, Problem, problem_media_type

REF = "#/components/schemas/{model}"

#: The bearer tokens, by the settings that hold them (the admin API's own ``HTTPBearer``
#: declares ``AdminToken`` the same way).
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "AdminToken": {"type": "http", "scheme": "bearer", "description": "COEX_ADMIN_TOKEN"},
    "SignupToken": {"type": "http", "scheme": "bearer", "description": "COEX_SIGNUP_TOKEN"},
    "FeedToken": {"type": "http", "scheme": "bearer", "description": "COEX_FEED_TOKEN"},
    "MetricsToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "COEX_METRICS_TOKEN; only asked for when it is set",
    },
}

#: The integer a path id is documented as; the handlers answer ``404`` for anything else.
ROW_ID = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}


def secured(scheme: str, *, optional: bool = False) -> dict[str, Any]:
    """``openapi_extra`` naming the route's bearer token (``optional``: only when set)."""
    if scheme not in SECURITY_SCHEMES:
        raise ValueError(f"no security scheme {scheme!r}")
    return {"security": [*([{}] if optional else []), {scheme: []}]}


def query(name: str, schema: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    """An optional query parameter as the OpenAPI document gives it."""
    parameter: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        parameter["description"] = description
    return parameter


def json_body(model: type[BaseModel], description: str) -> dict[str, Any]:
    """``openapi_extra`` for a JSON body read by hand and validated with ``model``.

    The model's schema and those it uses travel under ``$defs`` until :func:`document` moves
    them to the components, where the body refers to them.
    """
    schema = model.model_json_schema(ref_template=REF, mode="validation")
    definitions = {**schema.pop("$defs", {}), model.__name__: schema}
    reference = {"$ref": REF.format(model=model.__name__), "$defs": definitions}
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": reference}},
        }
    }


def errors(*statuses: int, **details: str) -> dict[int | str, dict[str, Any]]:
    """The error answers of a route, exactly these statuses, each a :class:`Problem`;
    ``details`` (``s404="..."``) says when one is given."""
    return {
        status: {
            "model": Problem,
            "description": details.get(f"s{status}", HTTPStatus(status).phrase),
        }
        for status in sorted(set(statuses))
    }


#: FastAPI's own ``422`` answer, as it documents it.
_FASTAPI_422 = {"$ref": "#/components/schemas/HTTPValidationError"}


def refusable(route: APIRoute) -> bool:
    """Whether FastAPI itself can refuse a request to ``route`` (``422``): it has a body, or
    a parameter that is not read as text."""
    return route.body_field is not None or any(
        field.field_info.annotation not in (str, str | None)
        for field in get_flat_params(route.dependant)
    )


def _validation_answers(routers: Iterable[APIRouter], built: dict[str, Any]) -> None:
    """FastAPI's ``422`` documented as the problem it is, or dropped where it cannot occur."""
    for route in (route for router in routers for route in router.routes):
        if not (isinstance(route, APIRoute) and route.include_in_schema):
            continue
        for method in route.methods or ():
            answers = built["paths"][route.path_format][method.lower()]["responses"]
            content = answers.get("422", {}).get("content", {}).get("application/json", {})
            if content.get("schema") != _FASTAPI_422:
                continue
            if refusable(route):
                answers["422"] = {
                    "description": "A parameter or the body cannot be read "
                    "(`invalid_request`), each field named in `errors`.",
                    "content": {"application/problem+json": {"schema": PROBLEM_REF}},
                }
            else:
                del answers["422"]
    if "HTTPValidationError" not in json.dumps(built["paths"]):
        for name in ("HTTPValidationError", "ValidationError"):
            built.get("components", {}).get("schemas", {}).pop(name, None)


def document(app: FastAPI, routers: Iterable[APIRouter]) -> dict[str, Any]:
    """The OpenAPI document of ``app``, which serves ``routers``: FastAPI's, with problem
    answers as ``application/problem+json``, request bodies' models among the components and
    every bearer token among the security schemes."""
    built = problem_media_type(FastAPI.openapi(app))
    _validation_answers(routers, built)
    components = built.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for operations in built.get("paths", {}).values():
        for operation in operations.values():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                continue
            # A copy: the route's own ``openapi_extra`` keeps its definitions.
            reference = dict(body["schema"])
            for name, schema in reference.pop("$defs", {}).items():
                if schemas.setdefault(name, schema) != schema:
                    raise ValueError(f"two different schemas are named {name}")
            body["schema"] = reference
    schemes = components.setdefault("securitySchemes", {})
    for name, scheme in SECURITY_SCHEMES.items():
        schemes.setdefault(name, scheme)
    return built
