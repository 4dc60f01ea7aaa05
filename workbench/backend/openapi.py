"""What the OpenAPI schema states beyond the request and response models: every error
status each route can answer (with ``ErrorResponse``, the JSON error model) and the
authentication `wb serve --auth`/`--token` asks for. docs/serve.md's table says the
same in words; tests/unit/test_backend_fuzz.py and tests/integration/test_serve_fuzz.py
check with schemathesis that the service answers nothing else."""

from __future__ import annotations

from fastapi import FastAPI

from .schemas import ErrorResponse

BAD_BODY = (
    "the request body could not be parsed as JSON (invalid UTF-8, or nested too deeply); "
    "send a JSON object"
)
#: FastAPI's own words for a body json.loads fails on other than JSONDecodeError
FASTAPI_BAD_BODY = "There was an error parsing the body"


def error_responses(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI ``responses`` for these statuses, each with the JSON error model."""
    return {s: {"model": ErrorResponse, "description": ERROR_MEANINGS[s]} for s in statuses}


ERROR_MEANINGS = {
    400: "the body is not parseable JSON (invalid UTF-8, nested too deeply), or an "
    "invalid Content-Length",
    401: "missing or wrong credentials (only when `wb serve --auth` or `--token` is set)",
    413: "the request body is over the limit (`--max-body-mb`)",
    422: "the body does not match this schema",
    503: "no model is promoted yet, or (/predict) too many requests are waiting",
}


def security(basic: bool, bearer: bool) -> tuple[dict, dict]:
    """(securitySchemes, the ``security`` requirement of the routes behind auth)."""
    schemes = {}
    if basic:
        schemes["basic"] = {"type": "http", "scheme": "basic"}
    if bearer:
        schemes["bearer"] = {"type": "http", "scheme": "bearer"}
    return schemes, ({"security": [{name: []} for name in schemes]} if schemes else {})


def install_security(app: FastAPI, schemes: dict) -> None:
    """Name the authentication ``wb serve`` asks for in the OpenAPI schema."""
    if not schemes:
        return
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = schemes
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
