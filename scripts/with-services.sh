#!/usr/bin/env bash
# Starts the services the tests need (PostgreSQL, and Kafka once kafka/ exists), runs the
# given command with their addresses in the environment, then stops them whatever happens.
# It adds them to APPSTORE_TEST_REQUIRE_SERVICES: a test needing one that skips then fails.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d -t appstore-services-XXXXXX)
chmod 755 "$work"
cleanup() {
  [ -x "$here/kafka/broker.sh" ] && "$here/kafka/broker.sh" stop "$work/kafka" >/dev/null 2>&1 || true
  "$here/scripts/postgres.sh" stop "$work/pg" || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "== starting PostgreSQL"
APPSTORE_TEST_POSTGRES_URL=$("$here/scripts/postgres.sh" start "$work/pg")
export APPSTORE_TEST_POSTGRES_URL
echo "   $APPSTORE_TEST_POSTGRES_URL"

if [ -x "$here/kafka/broker.sh" ] && [ -z "${APPSTORE_TEST_KAFKA_BOOTSTRAP:-}" ]; then
  echo "== fetching and starting Kafka"
  "$here/kafka/broker.sh" fetch
  APPSTORE_TEST_KAFKA_BOOTSTRAP=$("$here/kafka/broker.sh" start "$work/kafka" | tail -n 1)
  export APPSTORE_TEST_KAFKA_BOOTSTRAP APPSTORE_TEST_KAFKA_WORKDIR="$work/kafka"
  echo "   $APPSTORE_TEST_KAFKA_BOOTSTRAP"
fi

required="${APPSTORE_TEST_REQUIRE_SERVICES:-} postgres"
[ -n "${APPSTORE_TEST_KAFKA_BOOTSTRAP:-}" ] && required="$required kafka"
export APPSTORE_TEST_REQUIRE_SERVICES="$required"

set +e
"$@"
status=$?
set -e
exit $status
