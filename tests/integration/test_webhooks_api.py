"""The webhook routes over ASGI: the developer's own app only, the secret shown once,
bad input named, the delivery log, replay and the test event."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from appstore.bootstrap import create_app
from appstore.settings import Settings, WebhookSettings
from domain.clock import FixedClock
from tests.integration.test_api import Api, assert_problem, auth

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

URL = "http://127.0.0.1:9/hooks"  # never called here: nothing dispatches in these tests


@pytest.fixture
def api(settings: Settings, clock: FixedClock) -> Iterator[Api]:
    loopback = settings.model_copy(
        update={"webhooks": WebhookSettings(allow_loopback=True, secret_key="k")}
    )
    app = create_app(loopback, clock=clock)
    with TestClient(app) as client:
        yield Api(client, app.state.store, clock)
    app.state.store.close()
    app.state.projector.engine.dispose()


def subscribe(api: Api, developer: dict[str, str], app_id: str, **body: Any) -> Any:
    payload = {"url": URL, "topics": ["installation.authorized"], **body}
    return api.http.post(f"/v1/apps/{app_id}/webhooks", json=payload, headers=auth(developer))


def test_subscribing_shows_the_secret_once(api: Api) -> None:
    developer = api.account("developer")
    app = api.list_app(developer)
    made = subscribe(
        api, developer, app["id"], topics=["installation.authorized", "incident.raised"]
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["secret"].startswith("whsec_") and body["url"] == URL
    assert body["topics"] == ["installation.authorized", "incident.raised"]
    assert made.headers["location"] == f"/v1/apps/{app['id']}/webhooks/{body['id']}"
    one = api.http.get(made.headers["location"], headers=auth(developer))
    assert one.status_code == 200 and "secret" not in one.json()
    listed = api.http.get(f"/v1/apps/{app['id']}/webhooks", headers=auth(developer)).json()
    assert [w["id"] for w in listed["items"]] == [body["id"]]
    assert body["secret"] not in made.text.replace(body["secret"], "", 1)  # once in the answer


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "https://10.0.0.1/x"}, "url"),
        ({"url": "http://hooks.example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"topics": ["installation.exploded"]}, "topics"),
        ({"topics": []}, "topics"),
        ({"topics": "installation.authorized"}, "topics"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_input_names_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    developer = api.account("developer")
    app = api.list_app(developer)
    assert_problem(subscribe(api, developer, app["id"], **body), 422, field)


def test_only_the_apps_developer_sees_or_changes_its_webhooks(api: Api) -> None:
    owner, other, seller = api.account("developer"), api.account("developer"), api.account()
    app = api.list_app(owner)
    hook = subscribe(api, owner, app["id"]).json()
    path = f"/v1/apps/{app['id']}/webhooks/{hook['id']}"
    assert_problem(subscribe(api, other, app["id"]), 404)
    for method, suffix in [
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/rotate-secret"),
        ("POST", "/test"),
        ("GET", "/deliveries"),
    ]:
        kwargs: dict[str, Any] = (
            {"json": {"topics": ["incident.raised"]}} if method == "PATCH" else {}
        )
        answer = api.http.request(method, path + suffix, headers=auth(other), **kwargs)
        assert_problem(answer, 404)
    assert_problem(api.http.get(path, headers=auth(seller)), 403)
    assert_problem(api.http.get(f"/v1/apps/{app['id']}/webhooks/nope", headers=auth(owner)), 404)


def test_change_rotate_and_delete(api: Api) -> None:
    developer = api.account("developer")
    app = api.list_app(developer)
    hook = subscribe(api, developer, app["id"]).json()
    path = f"/v1/apps/{app['id']}/webhooks/{hook['id']}"
    changed = api.http.patch(path, json={"topics": ["incident.resolved"]}, headers=auth(developer))
    assert changed.status_code == 200, changed.text
    assert changed.json()["topics"] == ["incident.resolved"] and changed.json()["url"] == URL
    assert_problem(
        api.http.patch(path, json={"url": "ftp://x"}, headers=auth(developer)), 422, "url"
    )
    rotated = api.http.post(path + "/rotate-secret?overlap_hours=2", headers=auth(developer))
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != hook["secret"]
    assert rotated.json()["previous_secret_expires_at"] == "2026-01-01T02:00:00Z"
    assert api.http.get(path, headers=auth(developer)).json()["previous_secret_expires_at"]
    bad = api.http.post(path + "/rotate-secret?overlap_hours=999", headers=auth(developer))
    assert_problem(bad, 422, "overlap_hours")
    assert api.http.delete(path, headers=auth(developer)).status_code == 204
    assert_problem(api.http.get(path, headers=auth(developer)), 404)
    assert_problem(api.http.delete(path, headers=auth(developer)), 404)


def test_the_delivery_log_lists_a_test_event_and_a_replay_is_accepted(api: Api) -> None:
    developer = api.account("developer")
    app = api.list_app(developer)
    hook = subscribe(api, developer, app["id"]).json()
    path = f"/v1/apps/{app['id']}/webhooks/{hook['id']}"
    api.install(api.account(), app["id"])
    test = api.http.post(path + "/test", headers=auth(developer))
    assert test.status_code == 202, test.text
    log = api.http.get(path + "/deliveries", headers=auth(developer))
    assert log.status_code == 200, log.text
    items = log.json()["items"]
    assert [i["event_type"] for i in items] == ["webhook.test", "installation.authorized"]
    assert items[0]["id"] == test.json()["delivery_id"]
    assert {i["status"] for i in items} == {"pending"} and items[0]["attempts"] == 0
    assert items[0]["message_id"] == "msg_" + items[0]["id"].replace("-", "")
    one = api.http.get(f"{path}/deliveries/{items[1]['id']}", headers=auth(developer)).json()
    assert one["data"]["app_id"] == app["id"]
    pending = api.http.get(path + "/deliveries?status=succeeded", headers=auth(developer))
    assert pending.json()["total"] == 0
    replay = api.http.post(f"{path}/deliveries/{items[1]['id']}/replay", headers=auth(developer))
    assert replay.status_code == 202, replay.text
    assert replay.json()["status"] == "pending"
    missing = f"{path}/deliveries/00000000-0000-0000-0000-000000000000/replay"
    assert_problem(api.http.post(missing, headers=auth(developer)), 404)
