"""Errors as OpenAI-compatible clients expect them: `{"error": {"message", "type", "param",
"code"}}` with the matching HTTP status, for our own refusals and for FastAPI's."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}
# Validation problems that mean "this server does not do that" rather than "a bad value": an
# unknown parameter, or one the schema accepts only at its neutral value (serve/schemas.py).
UNSUPPORTED_PROBLEMS = ("extra_forbidden", "unsupported")


class ApiError(Exception):
    """A refusal with its HTTP status, told to the client in OpenAI's error format."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, self.param, self.code, self.headers)


def error_response(
    status: int,
    message: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    error_type = ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def refused(request: Request, error: ApiError) -> JSONResponse:
        return error.response()

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        message = "; ".join(f"{field_name(problem)}: {problem_message(problem)}" for problem in problems)
        unsupported = bool(problems) and problems[0].get("type") in UNSUPPORTED_PROBLEMS
        code = "unsupported_parameter" if unsupported else "invalid_value"
        return error_response(400, message, field_name(problems[0]) if problems else None, code)

    @app.exception_handler(Exception)
    async def crashed(request: Request, error: Exception) -> JSONResponse:
        # A bug or an out-of-memory: the traceback goes to the server's log, not to the client.
        return error_response(500, "the server failed to answer this request; its log says why")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail), headers=error.headers)


def problem_message(problem: dict[str, Any]) -> str:
    if problem.get("type") == "extra_forbidden":  # pydantic says "Extra inputs are not permitted"
        return "this server does not support this parameter"
    return problem["msg"]


def field_name(problem: dict[str, Any]) -> str:
    """`messages.0.role` for a problem located at ("body", "messages", 0, "role")."""
    if problem.get("type") == "json_invalid":
        return "body"  # located at a character offset, which is no field
    location = [str(part) for part in problem.get("loc", ()) if part != "body"]
    return ".".join(location) or "body"


class BodySizeLimit:
    """ASGI middleware: a request body over `max_bytes` is refused with 413 before anything parses
    it; the body is read here once and handed on, so the app never sees more than the limit."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            await self.refuse(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self.refuse(scope, receive, send)
                return
            if not message.get("more_body"):
                break
        handed_on = False

        async def replay() -> dict:
            nonlocal handed_on
            if handed_on:
                return await receive()  # after the body: the client's disconnect, if it comes
            handed_on = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def refuse(self, scope: dict, receive: Any, send: Any) -> None:
        message = f"the request body is larger than this server's limit of {self.max_bytes} bytes (--max-body-bytes)"
        response = error_response(413, message, code="request_too_large", headers={"Connection": "close"})
        await response(scope, receive, send)
