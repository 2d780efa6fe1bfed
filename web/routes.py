"""The pages' route table, top to bottom. GET pages are plain functions (Starlette runs
them in its threadpool); every POST goes through `posted`, which checks CSRF."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from web import accounts, catalog
from web.forms import posted
from web.pages import STATIC

routes: list[BaseRoute] = [
    Route("/", catalog.home, methods=["GET"], name="home"),
    Route("/apps/{slug}", catalog.app_detail, methods=["GET"], name="app"),
    Route("/apps/{slug}/install", catalog.install, methods=["GET"], name="install"),
    Route("/signin", accounts.sign_in_page, methods=["GET"], name="signin"),
    Route("/signin", posted(accounts.sign_in), methods=["POST"]),
    Route("/signup", accounts.sign_up_page, methods=["GET"], name="signup"),
    Route("/signup", posted(accounts.sign_up), methods=["POST"]),
    Route("/signout", posted(accounts.sign_out), methods=["POST"], name="signout"),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]
