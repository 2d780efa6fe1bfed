#!/usr/bin/env bash
# Run a REAL Apache Kafka 4.x broker (KRaft, one combined broker+controller node)
# from its Maven Central jars, for tests and benchmarks. No Docker, no tarball.
#
# Usage:
#   kafka/broker.sh fetch              download the broker jars once (cached)
#   kafka/broker.sh start   <workdir>  fresh broker in <workdir>; prints bootstrap
#   kafka/broker.sh stop    <workdir>  SIGTERM, then SIGKILL after a grace period
#   kafka/broker.sh restart <workdir>  stop + start on the same ports and data
#
# Files in <workdir>: server.properties, ports, data/, broker.log, broker.pid,
# bootstrap (host:port, e.g. 127.0.0.1:40123).
#
# Environment:
#   APPSTORE_KAFKA_VERSION        Kafka version (default 4.4.0; falls back to
#                                 4.3.1 if 4.4.0 cannot be resolved)
#   APPSTORE_KAFKA_CACHE          where the jars go (default
#                                 $HOME/.cache/appstore-kafka/<version>)
#   PYTHON                        python with kafka-python for the readiness
#                                 check (default python3)
#   APPSTORE_KAFKA_START_TIMEOUT  seconds to wait for readiness (default 90)
#   APPSTORE_KAFKA_STOP_TIMEOUT   seconds before SIGKILL on stop (default 30)
#   APPSTORE_KAFKA_JAVA_OPTS      extra JVM options for the broker
#   APPSTORE_KAFKA_DEBUG=1        print each failed readiness attempt
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$SCRIPT_DIR/pom.xml"
LOG4J_CONF="$SCRIPT_DIR/log4j2.properties"

DEFAULT_VERSION="4.4.0"
FALLBACK_VERSION="4.3.1"
KAFKA_VERSION="${APPSTORE_KAFKA_VERSION:-$DEFAULT_VERSION}"
PY="${PYTHON:-python3}"
# Python runs from / (see wait_ready), so make a relative interpreter path absolute.
if [[ "$PY" == */* && "$PY" != /* ]]; then
    PY="$PWD/$PY"
fi
START_TIMEOUT="${APPSTORE_KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${APPSTORE_KAFKA_STOP_TIMEOUT:-30}"
JAVA_BIN="java"
if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    JAVA_BIN="$JAVA_HOME/bin/java"
fi

log() { echo "broker.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

cache_dir_for() { # <version>
    echo "${APPSTORE_KAFKA_CACHE:-$HOME/.cache/appstore-kafka/$1}"
}

# Content of the marker written after a successful fetch. It names the version
# and a hash of the pom, so editing the pom (e.g. a log4j bump) refetches.
marker_content() { # <version>
    local pom_hash
    pom_hash="$(sha256sum "$POM" | cut -d' ' -f1)"
    printf 'kafka=%s pom=%s\n' "$1" "$pom_hash"
}

lib_ready() { # <version> -> 0 if <cache>/lib holds a complete fetch of it
    local lib
    lib="$(cache_dir_for "$1")/lib"
    [[ -f "$lib/.fetched" ]] && [[ "$(cat "$lib/.fetched")" == "$(marker_content "$1")" ]]
}

fetch_version() { # <version>
    local version="$1" cache lib tmp
    cache="$(cache_dir_for "$version")"
    lib="$cache/lib"
    if lib_ready "$version"; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (Maven is needed once to fetch the Kafka jars)"
    mkdir -p "$cache"
    # One fetch at a time per cache dir (parallel make targets, pytest sessions).
    exec 9>"$cache/.fetch.lock"
    flock 9
    if lib_ready "$version"; then
        exec 9>&-
        return 0
    fi
    tmp="$(mktemp -d "$cache/lib.tmp.XXXXXX")"
    log "fetching Kafka $version jars into $lib (first time only) ..."
    # (sed: Maven 3.8 prints stray colour codes even with -B and style.color=never)
    if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
            -Dkafka.version="$version" \
            -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1 \
            | sed 's/\x1b\[[0-9;]*m//g' >&2; then
        rm -rf "$tmp"
        exec 9>&-
        return 1
    fi
    ls "$tmp"/kafka_2.13-"$version".jar >/dev/null 2>&1 \
        || { rm -rf "$tmp"; die "fetch finished but kafka_2.13-$version.jar is missing"; }
    marker_content "$version" >"$tmp/.fetched"
    # Swap in atomically-ish so a half-done fetch never looks complete.
    rm -rf "$lib"
    mv -T "$tmp" "$lib"
    exec 9>&-
    log "fetched $(find "$lib" -name '*.jar' | wc -l) jars for Kafka $version"
}

# Versions start may use, preferred first: the fallback only when no version
# was asked for explicitly.
candidate_versions() {
    echo "$KAFKA_VERSION"
    if [[ -z "${APPSTORE_KAFKA_VERSION:-}" && "$KAFKA_VERSION" != "$FALLBACK_VERSION" ]]; then
        echo "$FALLBACK_VERSION"
    fi
}

# Prints the lib dir of an already fetched candidate version, or fails.
fetched_lib_dir() {
    local v
    for v in $(candidate_versions); do
        if lib_ready "$v"; then
            echo "$(cache_dir_for "$v")/lib"
            return 0
        fi
    done
    return 1
}

cmd_fetch() {
    if fetched_lib_dir >/dev/null; then
        return 0  # cached: no Maven call at all
    fi
    if fetch_version "$KAFKA_VERSION"; then
        return 0
    fi
    if [[ -z "${APPSTORE_KAFKA_VERSION:-}" && "$KAFKA_VERSION" != "$FALLBACK_VERSION" ]]; then
        log "Kafka $KAFKA_VERSION did not resolve; falling back to $FALLBACK_VERSION"
        fetch_version "$FALLBACK_VERSION" && return 0
    fi
    die "could not fetch the Kafka jars (see Maven output above)"
}

# Prints the lib dir of a fetched version; fetches if nothing is there yet.
lib_dir() {
    fetched_lib_dir && return 0
    cmd_fetch
    fetched_lib_dir
}

abs_workdir() { # <workdir> -> absolute path, created
    [[ -n "${1:-}" ]] || die "missing <workdir> argument"
    mkdir -p "$1"
    (cd "$1" && pwd)
}

# pid from <workdir>/broker.pid if it is a live (non-zombie) Kafka broker.
running_pid() { # <workdir>
    local pidfile="$1/broker.pid" pid state
    [[ -f "$pidfile" ]] || return 1
    pid="$(cat "$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    # Guard against pid reuse: it must be our broker (kafka.Kafka <workdir>/...).
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $1/server.properties" || return 1
    state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo X)"
    [[ "$state" != "Z" && "$state" != "X" ]] || return 1
    echo "$pid"
}

port_from() { # <workdir> PORT|CTRL_PORT -> the port stored in <workdir>/ports
    local p
    p="$(sed -n "s/^$2=//p" "$1/ports")"
    [[ "$p" =~ ^[0-9]+$ ]] || die "no $2 in $1/ports"
    echo "$p"
}

pick_ports() { # prints "<port> <ctrl port>", two distinct free loopback ports
    "$PY" -c 'import socket
a = socket.socket(); a.bind(("127.0.0.1", 0))
b = socket.socket(); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])' 2>/dev/null \
    || python3 -c 'import socket
a = socket.socket(); a.bind(("127.0.0.1", 0))
b = socket.socket(); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])'
}

write_config() { # <workdir> <port> <ctrl port>
    local wd="$1" port="$2" ctrl="$3"
    cat >"$wd/server.properties" <<EOF
# Generated by kafka/broker.sh - single combined KRaft node for tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$ctrl
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$ctrl
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$wd/data

num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
delete.topic.enable=true
group.initial.rebalance.delay.ms=0

offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
EOF
}

new_cluster_id() { # Kafka Uuid: url-safe base64 of 16 random bytes, no padding
    python3 -c 'import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break'
}

# Blocks until the broker answers a produce/consume round trip (kafka-python),
# the broker process dies (returns 2), or the timeout expires (returns 3).
wait_ready() { # <workdir> <bootstrap> <pid> <broker.log offset of this launch>
    local wd="$1" bootstrap="$2" pid="$3" log_offset="$4"
    # Python is run from / on purpose: from the repo root, "import kafka" would
    # find this very kafka/ directory (a namespace package) when kafka-python
    # is missing.
    if ! (cd / && "$PY" -c 'from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer') \
            >/dev/null 2>&1; then
        log "warning: '$PY' has no kafka-python; readiness = 'Kafka Server started' in the log + open port"
        local deadline=$((SECONDS + START_TIMEOUT))
        while ((SECONDS < deadline)); do
            running_pid "$wd" >/dev/null || return 2
            if tail -c "+$((log_offset + 1))" "$wd/broker.log" 2>/dev/null \
                    | grep "Kafka Server started" >/dev/null \
                && python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1).close()" \
                    "${bootstrap##*:}" 2>/dev/null; then
                return 0
            fi
            sleep 0.5
        done
        return 3
    fi
    (cd / && "$PY" - "$bootstrap" "$pid" "$START_TIMEOUT") <<'PY'
import logging, os, socket, sys, time, uuid

logging.disable(logging.CRITICAL)  # kafka-python is noisy while the broker boots
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

bootstrap, pid, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
debug = os.environ.get("APPSTORE_KAFKA_DEBUG") == "1"
t0 = time.monotonic()
deadline = t0 + timeout
topic = "_appstore_broker_ready"


def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


# Short reconnect backoff: kafka-python's default grows to 30 s while the port is
# still closed, which made readiness lag the broker by 5+ s.
common = dict(bootstrap_servers=bootstrap, request_timeout_ms=5000,
              reconnect_backoff_ms=50, reconnect_backoff_max_ms=500)
host, port = bootstrap.rsplit(":", 1)


def port_open():
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


def round_trip():
    token = uuid.uuid4().hex.encode()
    admin = KafkaAdminClient(bootstrap_timeout_ms=5000, **common)
    try:
        admin.list_topics()
    finally:
        admin.close()
    producer = KafkaProducer(acks="all", max_block_ms=10000, **common)
    try:
        meta = producer.send(topic, token).get(timeout=10)
    finally:
        producer.close(timeout=5)
    consumer = KafkaConsumer(enable_auto_commit=False, consumer_timeout_ms=5000,
                             **dict(common, request_timeout_ms=6000))
    try:
        tp = TopicPartition(topic, meta.partition)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        for record in consumer:
            if record.value == token:
                return
        raise RuntimeError("readiness record not consumed back")
    finally:
        consumer.close()
    # Leave no trace for tests that list topics; failure here is harmless.
    try:
        admin = KafkaAdminClient(bootstrap_timeout_ms=5000, **common)
        try:
            admin.delete_topics([topic], timeout_ms=5000)
        finally:
            admin.close()
    except Exception:
        pass


last = None
while time.monotonic() < deadline:
    if not alive():
        sys.exit(2)
    if not port_open():
        time.sleep(0.1)
        continue
    try:
        round_trip()
        if debug:
            print(f"broker.sh: +{time.monotonic() - t0:.1f}s ready", file=sys.stderr)
        sys.exit(0)
    except Exception as exc:  # broker still booting
        last = exc
        if debug:
            print(f"broker.sh: +{time.monotonic() - t0:.1f}s not ready: {exc!r}", file=sys.stderr)
        time.sleep(0.5)
print(f"broker.sh: readiness check never passed; last error: {last!r}", file=sys.stderr)
sys.exit(3)
PY
}

# Starts the JVM on an already written config + formatted storage, waits for it.
launch() { # <workdir>
    local wd="$1" lib pid bootstrap port log_offset rc=0
    lib="$(lib_dir)"
    port="$(port_from "$wd" PORT)"
    bootstrap="127.0.0.1:$port"
    local -a jvm_opts=(-Xmx512m -Xms256m -Djava.awt.headless=true
        "-Dlog4j2.configurationFile=$LOG4J_CONF")
    if [[ -n "${APPSTORE_KAFKA_JAVA_OPTS:-}" ]]; then
        # shellcheck disable=SC2206
        jvm_opts+=($APPSTORE_KAFKA_JAVA_OPTS)
    fi
    log_offset="$(stat -c %s "$wd/broker.log" 2>/dev/null || echo 0)"
    # All three std fds redirected: the JVM must not hold the caller's pipes open.
    "$JAVA_BIN" "${jvm_opts[@]}" -cp "$lib/*" kafka.Kafka "$wd/server.properties" \
        </dev/null >>"$wd/broker.log" 2>&1 &
    pid=$!
    echo "$pid" >"$wd/broker.pid"
    echo "$bootstrap" >"$wd/bootstrap"
    log "broker pid $pid starting on $bootstrap (log: $wd/broker.log)"
    wait_ready "$wd" "$bootstrap" "$pid" "$log_offset" || rc=$?
    if ((rc != 0)); then
        case "$rc" in
            2) log "broker process exited during startup" ;;
            3) log "broker not ready after ${START_TIMEOUT}s" ;;
            *) log "readiness check failed (exit $rc) with '$PY'" ;;
        esac
        log "last lines of $wd/broker.log:"
        tail -n 40 "$wd/broker.log" >&2 || true
        cmd_stop "$wd" >/dev/null 2>&1 || true
        exit 1
    fi
    echo "$bootstrap"
}

cmd_start() {
    local wd pid port ctrl lib
    wd="$(abs_workdir "${1:-}")"
    if pid="$(running_pid "$wd")"; then
        die "a broker is already running in $wd (pid $pid); stop it first"
    fi
    lib="$(lib_dir)"
    read -r port ctrl < <(pick_ports) || true
    [[ -n "${ctrl:-}" ]] || die "could not pick free ports"
    printf 'PORT=%s\nCTRL_PORT=%s\n' "$port" "$ctrl" >"$wd/ports"
    write_config "$wd" "$port" "$ctrl"
    rm -rf "$wd/data" "$wd/broker.pid" "$wd/bootstrap"
    : >"$wd/broker.log"
    # Static voters (controller.quorum.voters) => format WITHOUT --standalone.
    if ! "$JAVA_BIN" -Xmx256m "-Dlog4j2.configurationFile=$LOG4J_CONF" -cp "$lib/*" \
            kafka.tools.StorageTool format -t "$(new_cluster_id)" \
            -c "$wd/server.properties" >"$wd/format.log" 2>&1; then
        cat "$wd/format.log" >&2
        die "formatting storage failed"
    fi
    launch "$wd"
}

cmd_stop() {
    local wd pid deadline
    wd="$(abs_workdir "${1:-}")"
    if ! pid="$(running_pid "$wd")"; then
        rm -f "$wd/broker.pid"
        return 0
    fi
    log "stopping broker pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while ((SECONDS < deadline)) && running_pid "$wd" >/dev/null; do
        sleep 0.2
    done
    if running_pid "$wd" >/dev/null; then
        log "broker pid $pid ignored SIGTERM for ${STOP_TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 10))
        while ((SECONDS < deadline)) && running_pid "$wd" >/dev/null; do
            sleep 0.2
        done
    fi
    rm -f "$wd/broker.pid"
}

cmd_restart() {
    local wd
    wd="$(abs_workdir "${1:-}")"
    [[ -f "$wd/ports" && -f "$wd/data/meta.properties" ]] \
        || die "$wd holds no formatted broker; use 'start' first"
    cmd_stop "$wd"
    # Same ports, same data dir, no re-format. Rewriting the config keeps it
    # in step with this script; the ports come from <workdir>/ports.
    write_config "$wd" "$(port_from "$wd" PORT)" "$(port_from "$wd" CTRL_PORT)"
    launch "$wd"
}

usage() {
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
}

case "${1:-}" in
    fetch) cmd_fetch ;;
    start) cmd_start "${2:-}" ;;
    stop) cmd_stop "${2:-}" ;;
    restart) cmd_restart "${2:-}" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
esac
