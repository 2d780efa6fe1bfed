"""The pages' route table, top to bottom. GET pages are plain functions (Starlette runs
them in its threadpool); every POST goes through `posted`, which checks CSRF."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from web import (
    accounts,
    catalog,
    developer,
    install,
    my_apps,
    notifications,
    reviews,
    webhook_log,
    webhooks,
)
from web.forms import posted
from web.pages import STATIC

HOOKS = "/developer/apps/{id}/webhooks"
HOOK = HOOKS + "/{webhook}"

routes: list[BaseRoute] = [
    Route("/", catalog.home, methods=["GET"], name="home"),
    Route("/apps/{slug}", catalog.app_detail, methods=["GET"], name="app"),
    Route("/apps/{slug}/review", reviews.review_page, methods=["GET"]),
    Route("/apps/{slug}/review", posted(reviews.save_review), methods=["POST"]),
    Route("/apps/{slug}/review/delete", posted(reviews.delete_review), methods=["POST"]),
    Route("/apps/{slug}/reviews/{review}/helpful", posted(reviews.mark_helpful), methods=["POST"]),
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
    Route("/my-apps/{id}/scopes/{scope}/revoke", my_apps.revoke_scope_page, methods=["GET"]),
    Route("/my-apps/{id}/scopes/{scope}/revoke", posted(my_apps.revoke_scope), methods=["POST"]),
    Route(
        "/notifications", notifications.notifications_page, methods=["GET"], name="notifications"
    ),
    Route("/notifications/read-all", posted(notifications.mark_all_read), methods=["POST"]),
    Route("/notifications/{id}/read", posted(notifications.mark_read), methods=["POST"]),
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
    # Webhooks of my apps and their delivery log (developer console)
    Route("/developer/webhooks", webhooks.overview_page, methods=["GET"]),
    Route(HOOKS, webhooks.app_webhooks_page, methods=["GET"]),
    Route(HOOKS + "/new", webhooks.new_page, methods=["GET"]),
    Route(HOOKS + "/new", posted(webhooks.create), methods=["POST"]),
    Route(HOOK, webhook_log.webhook_page, methods=["GET"]),
    Route(HOOK + "/edit", webhooks.edit_page, methods=["GET"]),
    Route(HOOK + "/edit", posted(webhooks.edit), methods=["POST"]),
    Route(HOOK + "/delete", webhooks.delete_page, methods=["GET"]),
    Route(HOOK + "/delete", posted(webhooks.delete), methods=["POST"]),
    Route(HOOK + "/rotate-secret", webhooks.rotate_page, methods=["GET"]),
    Route(HOOK + "/rotate-secret", posted(webhooks.rotate_secret), methods=["POST"]),
    Route(HOOK + "/test", posted(webhook_log.send_test), methods=["POST"]),
    Route(HOOK + "/deliveries/{delivery}", webhook_log.delivery_page, methods=["GET"]),
    Route(HOOK + "/deliveries/{delivery}/replay", posted(webhook_log.replay), methods=["POST"]),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]
