"""The SSRF guard of outbound webhooks: forbidden addresses refused when subscribing and
when sending (after resolving the name), the checked address is the one connected to,
redirects are not followed, and a receiver's endless answer does not hold a dispatcher."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from application.webhooks import WebhookRequest
from consumers.webhook_http import GuardedPoster, Refused
from domain.errors import InvalidUrl
from domain.webhook import check_url
from tests.webhook_receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def resolving(answers: dict[str, list[str]]) -> Any:
    """A resolver (getaddrinfo's shape) answering from `answers` only."""

    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        family = socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port)) for address in answers[host]]

    return resolve


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.8/hooks",
        "https://192.168.1.1/hooks",
        "https://172.16.5.4/hooks",
        "https://169.254.169.254/latest/meta-data",  # cloud metadata
        "https://[fd00:ec2::254]/",  # the IPv6 metadata address
        "https://[::ffff:10.0.0.1]/",  # IPv4-mapped private
        "https://100.64.0.1/",  # shared address space
        "https://0.0.0.0/",
        "https://224.0.0.1/",
        "http://127.0.0.1:8080/hooks",  # loopback without the setting
        "http://localhost:8080/hooks",
        "https://[::1]/",
        "http://hooks.example.com/",  # http to anything but loopback
        "ftp://hooks.example.com/",
        "https://user:pw@hooks.example.com/",
        "hooks.example.com/path",
    ],
)
def test_a_subscription_refuses_urls_that_point_inside(url: str) -> None:
    with pytest.raises(InvalidUrl) as refused:
        check_url(url, allow_loopback=False)
    assert refused.value.field == "url"


def test_loopback_over_http_is_accepted_only_with_the_setting() -> None:
    assert check_url("http://127.0.0.1:9/x", allow_loopback=True) == "http://127.0.0.1:9/x"
    assert check_url("http://localhost:9/x", allow_loopback=True)
    assert check_url("https://hooks.example.com/in", allow_loopback=False)
    with pytest.raises(InvalidUrl):
        check_url("https://10.1.2.3/", allow_loopback=True)  # private stays refused


def test_a_name_resolving_to_loopback_is_refused_without_the_setting() -> None:
    poster = GuardedPoster(
        allow_loopback=False, resolve=resolving({"hooks.example.test": ["127.0.0.1"]})
    )
    try:
        with pytest.raises(Refused, match="loopback"):
            poster.destination("https://hooks.example.test/in")
        sent = poster.post(WebhookRequest("https://hooks.example.test/in", b"{}", {}))
        assert not sent.ok and sent.error.startswith("refused:") and "loopback" in sent.error
    finally:
        poster.close()


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (["10.0.0.5"], "private"),
        (["169.254.169.254"], "link-local"),
        (["93.184.216.34", "192.168.0.10"], "private"),  # one bad answer is enough
    ],
)
def test_a_name_resolving_to_a_forbidden_address_is_refused(
    answers: list[str], reason: str
) -> None:
    poster = GuardedPoster(allow_loopback=True, resolve=resolving({"hooks.example.test": answers}))
    try:
        with pytest.raises(Refused, match=reason):
            poster.destination("https://hooks.example.test/in")
    finally:
        poster.close()


def test_an_unresolvable_name_is_a_failed_attempt_not_an_error() -> None:
    poster = GuardedPoster(resolve=resolving({}))
    try:
        sent = poster.post(WebhookRequest("https://nowhere.example.test/", b"{}", {}))
        assert not sent.ok and "cannot resolve" in sent.error and not sent.final
    finally:
        poster.close()


def test_the_post_goes_to_the_address_that_was_checked(receiver: Receiver) -> None:
    # "localhost" resolves (here) to the receiver's address; the request carries the name.
    resolve = resolving({"localhost": ["127.0.0.1"]})
    poster = GuardedPoster(allow_loopback=True, resolve=resolve)
    try:
        where = poster.destination(f"http://localhost:{receiver.port}/in?x=1")
        assert where.url == f"http://127.0.0.1:{receiver.port}/in?x=1"
        sent = poster.post(WebhookRequest(f"http://localhost:{receiver.port}/in", b"{}", {}))
        assert sent.ok and sent.status_code == 200 and sent.latency_ms is not None
        (got,) = receiver.wait_for(1)
        assert got.headers["host"] == f"localhost:{receiver.port}"
    finally:
        poster.close()


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    poster = GuardedPoster(allow_loopback=True)
    try:
        sent = poster.post(WebhookRequest(receiver.url("redirect"), b"{}", {}))
        assert not sent.ok and sent.status_code == 307 and "not followed" in sent.error
        assert receiver.on("target") == []
    finally:
        poster.close()


def test_an_endless_answer_is_cut_short(receiver: Receiver) -> None:
    poster = GuardedPoster(allow_loopback=True, timeout=5)
    try:
        started = time.monotonic()
        sent = poster.post(WebhookRequest(receiver.url("endless"), b"{}", {}))
        assert sent.ok and time.monotonic() - started < 5
    finally:
        poster.close()


def test_a_slow_receiver_times_out(receiver: Receiver) -> None:
    receiver.delay = 3
    poster = GuardedPoster(allow_loopback=True, timeout=0.5)
    try:
        sent = poster.post(WebhookRequest(receiver.url(), b"{}", {}))
        assert not sent.ok and "timed out" in sent.error
    finally:
        poster.close()
