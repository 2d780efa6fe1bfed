"""Ratings and reviews over HTTP (ASGI), on SQLite and PostgreSQL: the review's life,
its errors (each naming its field), replies, helpful marks, hiding by ops, the catalog's
rating, `sort=rating` and `min_rating`, and fuzzed bodies that never cause a 500."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import hypothesis
from hypothesis import strategies as st

from tests.integration.test_api import OPS, Api, api, assert_problem, auth

__all__ = ["api"]  # the fixture, shared with test_api


def reviewer(api: Api, app_id: str) -> dict[str, str]:
    """A seller with an authorized installation of the app."""
    seller = api.account("seller")
    api.install(seller, app_id)
    return seller


def post(api: Api, seller: dict[str, str], app_id: str, rating: Any, body: Any) -> Any:
    return api.http.post(
        f"/v1/apps/{app_id}/reviews", json={"rating": rating, "body": body}, headers=auth(seller)
    )


def rating_of(api: Api, app_id: str) -> dict[str, Any]:
    detail = api.http.get(f"/v1/apps/{app_id}").json()
    items = api.http.get("/v1/apps", params={"page_size": 100}).json()["items"]
    (item,) = [i for i in items if i["id"] == app_id]
    assert item["rating"] == detail["rating"]
    return dict(detail["rating"])


def test_a_review_is_posted_edited_deleted_and_posted_again(api: Api) -> None:
    developer = api.account("developer")
    app_id = api.list_app(developer)["id"]
    assert rating_of(api, app_id) == {"average": None, "count": 0}
    seller = reviewer(api, app_id)
    created = post(api, seller, app_id, 4, "  Orders arrive within a minute.\nRecommended.  ")
    assert created.status_code == 201, created.text
    review = created.json()
    assert created.headers["location"] == f"/v1/apps/{app_id}/reviews/{review['id']}"
    assert review["app_id"] == app_id and review["seller_id"] == seller["id"]
    assert review["seller_name"] == "N"
    assert review["body"] == "Orders arrive within a minute.\nRecommended."
    assert (review["rating"], review["reply"], review["helpful"]) == (4, None, 0)
    assert review["created_at"] == review["updated_at"]
    assert rating_of(api, app_id) == {"average": 4.0, "count": 1}
    listed = api.http.get(f"/v1/apps/{app_id}/reviews").json()
    assert listed["total"] == 1 and listed["items"][0] == review
    assert api.http.get(f"/v1/apps/{app_id}/reviews/{review['id']}").json() == review

    assert_problem(post(api, seller, app_id, 5, "Posting twice"), 409)
    edited = api.http.put(
        f"/v1/apps/{app_id}/reviews/{review['id']}",
        json={"rating": 2, "body": "Slower since the update"},
        headers=auth(seller),
    )
    assert edited.status_code == 200, edited.text
    assert (edited.json()["rating"], edited.json()["hidden"]) == (2, None)
    assert rating_of(api, app_id) == {"average": 2.0, "count": 1}
    gone = api.http.delete(f"/v1/apps/{app_id}/reviews/{review['id']}", headers=auth(seller))
    assert gone.status_code == 204
    assert api.http.get(f"/v1/apps/{app_id}/reviews").json()["total"] == 0
    assert rating_of(api, app_id) == {"average": None, "count": 0}
    assert_problem(api.http.get(f"/v1/apps/{app_id}/reviews/{review['id']}"), 404)
    again = post(api, seller, app_id, 5, "Fixed: fast again")
    assert again.status_code == 201 and again.json()["id"] == review["id"]
    assert rating_of(api, app_id) == {"average": 5.0, "count": 1}


def test_bad_input_and_the_wrong_caller_get_named_problems(api: Api) -> None:
    developer = api.account("developer")
    app_id = api.list_app(developer)["id"]
    seller = reviewer(api, app_id)
    for rating in (0, 6, 4.5, "5", None, True):
        assert_problem(post(api, seller, app_id, rating, "Fine"), 422, "rating")
    for body in ("", "   ", "x" * 2001, "nul\u0000byte", "bell\u0007", 12, None):
        assert_problem(post(api, seller, app_id, 5, body), 422, "body")
    missing = api.http.post(f"/v1/apps/{app_id}/reviews", json={"body": "Hi"}, headers=auth(seller))
    assert_problem(missing, 422, "rating")
    assert_problem(post(api, api.account("seller"), app_id, 5, "Never installed it"), 403)
    assert_problem(post(api, developer, app_id, 5, "My own app"), 403)
    assert_problem(
        api.http.post(f"/v1/apps/{app_id}/reviews", json={"rating": 5, "body": "x"}), 401
    )
    unknown = "00000000-0000-4000-8000-000000000000"
    assert_problem(post(api, seller, unknown, 5, "No such app"), 404)
    assert_problem(post(api, seller, "not-an-id", 5, "No such app"), 404)
    assert_problem(api.http.get(f"/v1/apps/{unknown}/reviews"), 404)
    assert_problem(
        api.http.get(f"/v1/apps/{app_id}/reviews", params={"sort": "worst"}), 422, "sort"
    )
    assert api.http.get(f"/v1/apps/{app_id}/reviews").json()["total"] == 0  # nothing half-written


def test_replies_helpful_marks_and_the_two_orders(api: Api) -> None:
    developer, stranger = api.account("developer"), api.account("developer")
    app_id = api.list_app(developer)["id"]
    sellers = [reviewer(api, app_id) for _ in range(3)]
    ids = []
    for n, seller in enumerate(sellers):
        api.clock.advance(timedelta(minutes=1))
        ids.append(post(api, seller, app_id, 3 + n, f"Review number {n}").json()["id"])
    helpful = f"/v1/apps/{app_id}/reviews/{ids[0]}/helpful"
    for reader in sellers[1:]:
        assert api.http.post(helpful, headers=auth(reader)).status_code == 200
    assert_problem(api.http.post(helpful, headers=auth(sellers[1])), 409)
    assert_problem(api.http.post(helpful, headers=auth(sellers[0])), 403)  # the author
    newest = api.http.get(f"/v1/apps/{app_id}/reviews").json()["items"]
    assert [r["id"] for r in newest] == ids[::-1]
    most = api.http.get(f"/v1/apps/{app_id}/reviews", params={"sort": "helpful"}).json()
    assert (most["items"][0]["id"], most["items"][0]["helpful"]) == (ids[0], 2)
    page = api.http.get(f"/v1/apps/{app_id}/reviews", params={"page": 2, "page_size": 2}).json()
    assert (page["total"], [r["id"] for r in page["items"]]) == (3, [ids[0]])

    reply = f"/v1/apps/{app_id}/reviews/{ids[0]}/reply"
    assert_problem(api.http.put(reply, json={"body": "Hi"}, headers=auth(stranger)), 404)
    assert_problem(api.http.put(reply, json={"body": "Hi"}, headers=auth(sellers[1])), 403)
    assert_problem(api.http.put(reply, json={"body": " "}, headers=auth(developer)), 422, "body")
    first = api.http.put(reply, json={"body": "Thanks!"}, headers=auth(developer)).json()
    api.clock.advance(timedelta(minutes=1))
    second = api.http.put(reply, json={"body": "Thanks, fixed in 2.1"}, headers=auth(developer))
    assert second.json()["reply"]["body"] == "Thanks, fixed in 2.1"
    assert second.json()["reply"]["created_at"] == first["reply"]["created_at"]
    assert second.json()["reply"]["updated_at"] > first["reply"]["updated_at"]
    listed = api.http.get(f"/v1/apps/{app_id}/reviews", params={"sort": "helpful"}).json()
    assert listed["items"][0]["reply"]["body"] == "Thanks, fixed in 2.1"
    mine = api.http.get("/v1/developer/reviews", headers=auth(developer)).json()
    assert mine["total"] == 3 and mine["items"][0]["app"]["id"] == app_id
    assert api.http.get("/v1/developer/reviews", headers=auth(stranger)).json()["total"] == 0


def test_a_hidden_review_leaves_the_store_and_the_rating_but_its_reason_stays(api: Api) -> None:
    developer = api.account("developer")
    app_id = api.list_app(developer)["id"]
    good, spam = reviewer(api, app_id), reviewer(api, app_id)
    post(api, good, app_id, 5, "Great support")
    bad = post(api, spam, app_id, 1, "Buy followers at example.com").json()
    assert rating_of(api, app_id) == {"average": 3.0, "count": 2}
    hide = f"/v1/audit/reviews/{bad['id']}/hide"
    assert_problem(api.http.post(hide, json={"reason": "Advertising"}), 401)
    assert_problem(api.http.post(hide, json={"reason": "Advertising"}, headers=auth(good)), 401)
    assert_problem(api.http.post(hide, json={"reason": ""}, headers=OPS), 422, "reason")
    hidden = api.http.post(hide, json={"reason": "Advertising"}, headers=OPS)
    assert hidden.status_code == 200 and hidden.json()["hidden"]["reason"] == "Advertising"
    assert_problem(api.http.post(hide, json={"reason": "Again"}, headers=OPS), 409)
    assert rating_of(api, app_id) == {"average": 5.0, "count": 1}
    assert api.http.get(f"/v1/apps/{app_id}/reviews").json()["total"] == 1
    assert_problem(api.http.get(f"/v1/apps/{app_id}/reviews/{bad['id']}"), 404)
    own = api.http.get("/v1/me/reviews", headers=auth(spam)).json()["items"]
    assert own[0]["hidden"]["reason"] == "Advertising"
    ops = api.http.get("/v1/audit/reviews", params={"hidden": "true"}, headers=OPS).json()
    assert [r["id"] for r in ops["items"]] == [bad["id"]]
    history = api.http.get(f"/v1/audit/aggregates/{bad['id']}/events", headers=OPS).json()
    hid = [e for e in history["items"] if e["event_type"] == "Review.Hidden"]
    assert hid[0]["payload"]["reason"] == "Advertising" and hid[0]["payload"]["by"] == "ops"
    shown = api.http.post(f"/v1/audit/reviews/{bad['id']}/unhide", headers=OPS)
    assert shown.status_code == 200 and shown.json()["hidden"] is None
    assert rating_of(api, app_id) == {"average": 3.0, "count": 2}


def test_the_catalog_sorts_by_rating_and_filters_by_a_minimum(api: Api) -> None:
    developer = api.account("developer")
    apps = {name: api.list_app(developer, name=name)["id"] for name in ("Alpha", "Beta", "Gamma")}
    api.list_app(developer, name="Delta")  # no reviews
    for name, stars in (("Alpha", [4, 4, 5]), ("Beta", [5]), ("Gamma", [2, 3])):
        for n in stars:
            post(api, reviewer(api, apps[name]), apps[name], n, "My honest opinion")
    ranked = api.http.get("/v1/apps", params={"sort": "rating"}).json()["items"]
    assert [i["name"] for i in ranked] == ["Alpha", "Beta", "Delta", "Gamma"]
    assert ranked[0]["rating"] == {"average": 4.3, "count": 3}
    four = api.http.get("/v1/apps", params={"min_rating": 4}).json()
    assert {i["name"] for i in four["items"]} == {"Alpha", "Beta"} and four["total"] == 2
    assert four["facets"]["categories"]["connectors"] == 2
    assert api.http.get("/v1/apps", params={"min_rating": 4.4}).json()["total"] == 1
    assert api.http.get("/v1/apps", params={"min_rating": 1}).json()["total"] == 3
    for bad in ("0", "5.5", "nan", "lots"):
        assert_problem(api.http.get("/v1/apps", params={"min_rating": bad}), 422, "min_rating")


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
BODIES = st.dictionaries(
    st.sampled_from(["rating", "body", "extra"]),
    st.one_of(st.integers(-3, 8), st.text(max_size=2100), JSON_VALUES),
)


def test_fuzzed_review_bodies_get_a_review_or_a_named_problem(api: Api) -> None:
    developer = api.account("developer")
    app_id = api.list_app(developer)["id"]
    seller = reviewer(api, app_id)
    url = f"/v1/apps/{app_id}/reviews"

    @hypothesis.settings(max_examples=120, deadline=None, database=None)
    @hypothesis.given(BODIES)
    def answered(body: dict[str, Any]) -> None:
        created = api.http.post(url, json=body, headers=auth(seller))
        if created.status_code in (200, 201):
            review_id = created.json()["id"]
            assert api.http.delete(f"{url}/{review_id}", headers=auth(seller)).status_code == 204
            return
        problem = assert_problem(created, 422)
        assert {e["field"].split(".")[0] for e in problem["errors"]} <= {"rating", "body", "extra"}

    answered()
