"""Accounts and sessions: sign up, log in, log out."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from api.auth import bearer_token, client_address, current_session
from api.routing import Call, Endpoint
from application import accounts


class SignUp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["seller", "developer"]
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    name: str = Field(max_length=200)
    account_type: Literal["local", "cross_border"] | None = None


class AccountOut(BaseModel):
    id: UUID
    role: str
    email: str
    name: str
    account_type: str | None
    position: int | None = None


class LogIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class SessionOut(BaseModel):
    token: str
    account_id: UUID
    role: str
    expires_at: datetime


async def sign_up(call: Call) -> AccountOut:
    """Creates a seller or developer account (the e-mail address must be free)."""
    body: SignUp = call.body
    store = call.state.store
    outcome = await call.run(
        accounts.register_account,
        store,
        body.role,
        body.email,
        body.password,
        body.name,
        body.account_type,
    )
    account = await call.run(accounts.account, store, outcome.id)
    call.headers["Location"] = f"/v1/accounts/{account.id}"
    return AccountOut(
        id=account.id,
        role=account.role,
        email=account.email,
        name=account.name,
        account_type=account.account_type,
        position=outcome.position,
    )


async def log_in(call: Call) -> SessionOut:
    """Logs in with e-mail and password; the token is shown once."""
    body: LogIn = call.body
    started = await call.run(
        accounts.start_session,
        call.state.store,
        body.email,
        body.password,
        client_address(call.request),
    )
    return SessionOut(
        token=started.token,
        account_id=started.session.account_id,
        role=started.session.role,
        expires_at=started.session.expires_at,
    )


async def log_out(call: Call) -> Response:
    """Ends the current session; its token stops working."""
    await current_session(call.request)
    await call.run(accounts.end_session, call.state.store, bearer_token(call.request))
    return Response(status_code=204)


endpoints = [
    Endpoint("POST", "/v1/accounts", sign_up, "Sign up", "accounts",
             body=SignUp, response=AccountOut, status=201, errors=(409,)),
    Endpoint("POST", "/v1/sessions", log_in, "Log in", "accounts",
             body=LogIn, response=SessionOut, status=201, errors=(401, 429)),
    Endpoint("DELETE", "/v1/sessions/current", log_out, "Log out", "accounts",
             status=204, auth="session"),
]  # fmt: skip
