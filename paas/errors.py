"""Errors a user can meet.

Each carries an `id` and an HTTP status so the same error becomes a clean CLI
line, an API error body `{"id": ..., "message": ...}` and a `remote:` line on
`git push`, never a traceback.
"""

from __future__ import annotations


class PaasError(Exception):
    id = "error"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "message": self.message}


class BadRequest(PaasError):
    """A request that is not even well-formed (a body that is not JSON)."""

    id = "bad_request"
    status = 400


class PayloadTooLarge(PaasError):
    id = "payload_too_large"
    status = 413


class RateLimited(PaasError):
    id = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvalidInput(PaasError):
    id = "invalid_params"
    status = 422


class RangeNotSatisfiable(PaasError):
    """A `Range` header a list cannot answer: an unknown field, option or bound."""

    id = "requested_range_not_satisfiable"
    status = 416


class NotFound(PaasError):
    id = "not_found"
    status = 404


class Conflict(PaasError):
    id = "conflict"
    status = 409


class Unauthorized(PaasError):
    id = "unauthorized"
    status = 401


class Forbidden(PaasError):
    id = "forbidden"
    status = 403


class BuildFailed(PaasError):
    id = "build_failed"
    status = 422


class DeployFailed(PaasError):
    id = "deploy_failed"
    status = 422
