#!/usr/bin/env bash
# System packages the test suite uses. Installed with apt-get when running as root;
# otherwise only reported, so an unprivileged developer knows what is missing.
set -euo pipefail
# Traffic lab (src/flowscope/lab): capture, attack tools, servers and clients it runs
# inside network namespaces. Servers are started by the lab with its own configs; the
# Debian services these packages may auto-start are neither used nor touched.
pkgs=(
  tcpdump iproute2 ethtool procps psmisc openssl curl wget socat
  nmap hping3 hydra patator slowhttptest apache2-utils iperf3
  nginx openssh-server openssh-client dnsmasq-base bind9-dnsutils vsftpd
  tcpreplay
  libcap2-bin util-linux   # setcap/getcap and setpriv: capture rights for an unprivileged user (tests/test_capture_live.py)
  chromium   # dashboard tests in a real browser (tests/test_web_browser.py, headless)
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  # Keep Debian from starting the services these packages contain (nginx, sshd, vsftpd):
  # the lab runs its own instances, and a machine without an init system would make
  # their start scripts fail the install.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "note: system packages not installed (need root): ${missing[*]}" >&2
fi
