"""The shapes of the API's request and response bodies, as pydantic models.

Request models validate bodies before an endpoint runs (strict types, no unknown
fields); both kinds feed /api/openapi.json (web/api/schema.py). The endpoints
keep their own checks of meaning (a process type the release has, a known
dyno size); these models say only what a well-formed body looks like.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

Role = Literal["view", "deploy", "owner"]
Seconds = Annotated[int, Field(ge=1, le=3600)]


class Body(BaseModel):
    """A request body: strict JSON types, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Out(BaseModel):
    """A response body; documented, not enforced."""

    model_config = ConfigDict(extra="allow")


# --- requests ----------------------------------------------------------------------------
class AppCreate(Body):
    name: str | None = Field(default=None, max_length=30, description="default: a random name")


class ConfigVarsPatch(RootModel[dict[str, str | None]]):
    """Config vars to set; null unsets one."""

    model_config = ConfigDict(strict=True)


class ReleaseCreate(Body):
    release: int | Annotated[str, Field(pattern=r"^[vV]?[0-9]{1,9}$")] | None = Field(
        default=None, description="the version to roll back to (default: the one before)")


class FormationUpdate(Body):
    type: str = Field(max_length=64)
    quantity: Annotated[int, Field(ge=0, le=100)] | None = None
    size: str | None = Field(default=None, max_length=64)


class FormationPatch(Body):
    updates: list[FormationUpdate] = Field(min_length=1, max_length=100)


class SettingsPatch(Body):
    boot_timeout: Seconds | None = None
    stop_timeout: Seconds | None = None


class BuildpackUpdate(Body):
    buildpack: str = Field(min_length=1, max_length=2048)


class BuildpacksPut(Body):
    updates: list[BuildpackUpdate] = Field(max_length=20)


class RunCreate(Body):
    command: str = Field(min_length=1)
    attach: bool = False
    tty: bool = False
    size: list[int] | None = Field(default=None, min_length=2, max_length=2)


class SourceBlob(Body):
    url: str = Field(min_length=1, max_length=4096, description="an http(s) tarball URL")
    version: str | None = Field(default=None, max_length=64,
                                description="a label, e.g. the commit; default: tarball")


class BuildCreate(Body):
    source_blob: SourceBlob


class AccountPatch(Body):
    password: str = Field(min_length=8, max_length=1024)
    current_password: str = Field(max_length=1024)


class TokenCreate(Body):
    description: str = Field(default="", max_length=200)


class UserCreate(Body):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._@+-]{1,63}$")
    is_admin: bool = False
    password: str | None = Field(default=None, min_length=8, max_length=1024,
                                 description="default: one is made and answered once")


class CollaboratorCreate(Body):
    user: str = Field(max_length=64)
    role: Role = "deploy"


class CollaboratorPatch(Body):
    role: Role


class Transfer(Body):
    owner: str = Field(max_length=64)


# --- responses ----------------------------------------------------------------------------
class Error(Out):
    id: str = Field(examples=["not_found"])
    message: str


class App(Out):
    name: str
    owner: str
    created_at: str
    web_url: str
    git_url: str
    release: int | None
    boot_timeout: int | None
    stop_timeout: int | None


class Build(Out):
    id: int
    status: Literal["pending", "building", "succeeded", "failed"]
    commit: str
    ref: str
    user: str | None
    created_at: str
    finished_at: str | None
    failure: str | None


class Release(Out):
    version: int
    status: Literal["pending", "succeeded", "failed"]
    status_reason: str | None
    description: str
    commit: str | None
    build_id: int | None
    user: str | None
    created_at: str
    current: bool
    process_types: dict[str, str]
    image: str | None


class FormationEntry(Out):
    type: str
    quantity: int
    command: str
    size: str


class Dyno(Out):
    id: str
    name: str
    type: str
    state: str


class Account(Out):
    name: str
    is_admin: bool


class Token(Out):
    id: int
    description: str
    created_at: str
    last_used_at: str | None


class TokenCreated(Token):
    token: str = Field(description="the secret; shown this once")
    user: str


class UserCreated(Account):
    password: str | None = Field(default=None, description="only when one was made")


class SshKey(Out):
    id: int
    fingerprint: str
    comment: str
    public_key: str
    created_at: str
    updated_at: str


class Domain(Out):
    hostname: str
    kind: Literal["platform", "custom"]
    created_at: str | None


class Collaborator(Out):
    user: str
    role: Role
    app_owner: bool


class AuditEntry(Out):
    id: int
    app: str
    user: str | None
    action: str
    detail: dict[str, Any]
    created_at: str


class Event(Out):
    id: int
    ts: str
    event: str
    proc: str
    fields: dict[str, str]
