#!/usr/bin/env bash
# `make test`: start the real parts the suite needs (PostgreSQL, Apache Kafka), lint, run pytest,
# and stop what it started, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=.venv/bin

bash infra/scripts/prereqs.sh --test

export PUHUI_TEST_KAFKA_BOOTSTRAP="${PUHUI_TEST_KAFKA_BOOTSTRAP:-127.0.0.1:39092}"
kafka_port="${PUHUI_TEST_KAFKA_BOOTSTRAP##*:}"
broker=("$BIN/python" -m infra.broker --state-dir "var/test-$kafka_port" --bootstrap "$PUHUI_TEST_KAFKA_BOOTSTRAP"
        --controller-port "$((kafka_port + 1))")

cleanup() {
  "${broker[@]}" stop >/dev/null 2>&1 || true
  bash infra/scripts/postgres.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

# The test broker starts from empty storage on every run: its state (prefixed topics of earlier
# runs, principals) is disposable, and a restarted SASL_SSL broker's SCRAM logins were seen to
# fail after a long first run (see docs/security.md, "Limits").
"${broker[@]}" stop >/dev/null 2>&1 || true
rm -rf "var/test-$kafka_port"

bash infra/scripts/postgres.sh start
export PUHUI_TEST_DATABASE_URL="$(bash infra/scripts/postgres.sh url)"
"${broker[@]}" start

echo "== lint" >&2
"$BIN/ruff" check .
"$BIN/ruff" format --check .
"$BIN/lint-imports"
"$BIN/mypy"
amtool check-config infra/alertmanager/alertmanager.yml

echo "== tests" >&2
status=0
if [[ "${PUHUI_COVERAGE:-1}" == 1 ]]; then
  # Coverage of the run, subprocesses included (pyproject's [tool.coverage]): reported, not gated.
  rm -rf var/coverage && mkdir -p var/coverage
  "$BIN/coverage" run -m pytest "$@" || status=$?
  if [[ $status -ne 5 ]]; then
    "$BIN/coverage" combine -q || true
    echo "== coverage (var/coverage/html/index.html)" >&2
    "$BIN/coverage" report || true
    "$BIN/coverage" html -q -d var/coverage/html || true
  fi
else
  "$BIN/pytest" "$@" || status=$?
fi
if [[ $status -eq 5 ]]; then
  echo "pytest collected no tests" >&2
fi
exit $status
