"""The pages' route table, top to bottom. GET pages are plain functions (Starlette runs
them in its threadpool); every POST goes through `posted`, which checks CSRF."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from web import accounts, catalog, developer, install, my_apps
from web.forms import posted
from web.pages import STATIC

routes: list[BaseRoute] = [
    Route("/", catalog.home, methods=["GET"], name="home"),
    Route("/apps/{slug}", catalog.app_detail, methods=["GET"], name="app"),
    Route("/apps/{slug}/install", install.install_page, methods=["GET"], name="install"),
    Route("/apps/{slug}/install", posted(install.install_step), methods=["POST"]),
    Route("/signin", accounts.sign_in_page, methods=["GET"], name="signin"),
    Route("/signin", posted(accounts.sign_in), methods=["POST"]),
    Route("/signup", accounts.sign_up_page, methods=["GET"], name="signup"),
    Route("/signup", posted(accounts.sign_up), methods=["POST"]),
    Route("/signout", posted(accounts.sign_out), methods=["POST"], name="signout"),
    # My apps and incidents (sellers)
    Route("/my-apps", my_apps.my_apps_page, methods=["GET"], name="my_apps"),
    Route("/my-apps/{id}", my_apps.installation_page, methods=["GET"]),
    Route("/my-apps/{id}/renew", my_apps.renew_page, methods=["GET"]),
    Route("/my-apps/{id}/renew", posted(my_apps.renew), methods=["POST"]),
    Route("/my-apps/{id}/cancel", my_apps.cancel_page, methods=["GET"]),
    Route("/my-apps/{id}/cancel", posted(my_apps.cancel), methods=["POST"]),
    Route(
        "/my-apps/{id}/incidents/{incident}/{action}",
        posted(my_apps.incident_action),
        methods=["POST"],
    ),
    # The developer console
    Route("/developer", developer.console_page, methods=["GET"], name="developer"),
    Route("/developer/apps/new", developer.new_app_page, methods=["GET"]),
    Route("/developer/apps/new", posted(developer.create_app), methods=["POST"]),
    Route("/developer/apps/{id}", developer.app_page, methods=["GET"]),
    Route("/developer/apps/{id}/edit", developer.edit_app_page, methods=["GET"]),
    Route("/developer/apps/{id}/edit", posted(developer.edit_app), methods=["POST"]),
    Route("/developer/apps/{id}/rotate-secret", developer.rotate_page, methods=["GET"]),
    Route("/developer/apps/{id}/rotate-secret", posted(developer.rotate_secret), methods=["POST"]),
    Route("/developer/installations", developer.installations_page, methods=["GET"]),
    Route("/developer/incidents", developer.incidents_page, methods=["GET"]),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]
