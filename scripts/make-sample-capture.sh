#!/usr/bin/env bash
# Records src/flowscope/data/sample.pcap: a short, real capture on the loopback interface
# (HTTP downloads from a local server, UDP request/response, ping, TCP probes of closed
# ports). Needs root (tcpdump), curl, ping and python3. Traffic stays on 127.0.0.1.
# The lab (`flowscope lab run`) replaces this with a namespaced network once it exists.
set -euo pipefail
out=${1:-src/flowscope/data/sample.pcap}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
head -c 300000 /dev/urandom > "$work/big.bin"
echo "hello from flowscope" > "$work/index.html"
(cd "$work" && exec python3 -m http.server 18080 --bind 127.0.0.1 >/dev/null 2>&1) &
python3 - <<'PY' &
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 15353))
s.settimeout(20)
try:
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(data[::-1] * 3, peer)
except OSError:
    pass
PY
sleep 1
tcpdump -i lo -w "$out" -s 0 -U 'host 127.0.0.1' >/dev/null 2>&1 &
tcpdump_pid=$!
sleep 1
for i in 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:18080/index.html"; done
curl -s -o /dev/null "http://127.0.0.1:18080/big.bin"
curl -s -o /dev/null "http://127.0.0.1:18080/missing"
ping -c 4 -i 0.2 127.0.0.1 >/dev/null
python3 - <<'PY'
import socket, time
for i in range(5):
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.settimeout(1)
    c.sendto(b"query-%d" % i, ("127.0.0.1", 15353))
    try:
        c.recvfrom(4096)
    except OSError:
        pass
    c.close()
    time.sleep(0.1)
for port in range(20000, 20040):  # connect probes to closed ports: SYN → RST
    s = socket.socket()
    s.settimeout(0.2)
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        pass
    s.close()
PY
sleep 1
kill "$tcpdump_pid"; wait "$tcpdump_pid" 2>/dev/null || true
echo "wrote $out"
