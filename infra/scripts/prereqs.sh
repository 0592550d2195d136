#!/usr/bin/env bash
# Install the system packages Puhui needs when they are missing (Debian; we run as root here).
# Java 17 + Maven run the Kafka broker from Maven Central jars; PostgreSQL, Prometheus and
# Alertmanager are Debian packages. Harmless when everything is there already.
set -euo pipefail
need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
if [[ "${1:-}" == "--test" ]]; then
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
  command -v promtool >/dev/null 2>&1 || need+=(prometheus)
  # /usr/bin/prometheus-alertmanager and amtool (config check, routing tests)
  command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
  [[ -x /usr/bin/chromium ]] || need+=(chromium)  # browser tests (Playwright drives it)
fi
if ((${#need[@]})); then
  echo "prereqs: installing ${need[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then
    echo "prereqs: need root to apt-get install ${need[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian's prometheus package may start a service on :9090; the tests start their own.
  # (An Alertmanager the package starts on :9093 is left alone: the tests use free ports.)
  pkill -x prometheus 2>/dev/null || true
fi
