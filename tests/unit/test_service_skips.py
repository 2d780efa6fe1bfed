"""The skip rule of tests/conftest.py: a test needing a service skips without it, unless
the run requires that service (make test requires them all); then the skip fails the run."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

CONFTEST = """
import pytest
from tests.conftest import pytest_collection_modifyitems, pytest_runtest_makereport

@pytest.fixture
def kafka_bootstrap():
    pytest.skip("no broker here")
"""

TESTS = """
import pytest

@pytest.mark.postgres
def test_marked_postgres():
    pytest.skip("no database here")

def test_uses_a_kafka_fixture(kafka_bootstrap):
    pass

@pytest.mark.browser
def test_marked_browser():
    pytest.skip("no chromium here")

def test_needs_nothing():
    pytest.skip("not this platform")
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\nmarkers =\n    postgres\n    kafka\n    browser\n")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=TESTS)
    return pytester


def test_without_required_services_a_missing_service_is_a_skip(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APPSTORE_TEST_REQUIRE_SERVICES", raising=False)
    suite.runpytest("-p", "no:cacheprovider").assert_outcomes(skipped=4)


def test_a_required_service_turns_its_skips_into_failures(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPSTORE_TEST_REQUIRE_SERVICES", "postgres kafka")
    result = suite.runpytest("-p", "no:cacheprovider", "-rA")
    # the kafka one is found by its fixture (its setup skipped: an error), so no test can
    # forget the marker
    result.assert_outcomes(failed=1, errors=1, skipped=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "skipped, but this run requires kafka (APPSTORE_TEST_REQUIRE_SERVICES)*no broker*",
            "skipped, but this run requires postgres (APPSTORE_TEST_REQUIRE_SERVICES)*no data*",
        ]
    )


def test_make_test_requires_all_three(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPSTORE_TEST_REQUIRE_SERVICES", "postgres,kafka,browser")
    result = suite.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2, errors=1, skipped=1)  # only the one needing nothing skips


def test_an_unknown_service_name_is_a_usage_error(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPSTORE_TEST_REQUIRE_SERVICES", "postgress")
    result = suite.runpytest("-p", "no:cacheprovider")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*unknown*postgress*"])
