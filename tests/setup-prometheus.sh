#!/usr/bin/env bash
# Installs what the monitoring tests and the local stack use, from Debian's packages, once:
# Prometheus 2.42 with promtool, Alertmanager 0.25 with amtool, and (for the KPI board's test)
# Chromium; and the deployment linters: docker-compose (for `config` only), yamllint and
# ShellCheck. Debian's packages would start Prometheus and Alertmanager as services where
# systemd runs; the tests and up.sh start their own instances instead. Idempotent.
set -euo pipefail
missing=()
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
for tool in docker-compose yamllint shellcheck; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${1:-}" = "--with-browser" ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]} from Debian" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
