#!/usr/bin/env bash
# System packages the test suite uses. Installed with apt-get when running as root;
# otherwise only reported, so an unprivileged developer knows what is missing.
set -euo pipefail
pkgs=()  # filled in as features need them (lab tools, browser)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "note: system packages not installed (need root): ${missing[*]}" >&2
fi
