"""Lab servers: config files written into the run's work dir, started in namespaces.

Every server runs in the foreground under the lab's process management, with its own
config, keys, pid and log files in the work dir; nothing under /etc (except the lab's
own /etc/netns/<ns>/ overlay) or systemd is used, and a host nginx/sshd/dnsmasq that
Debian may have started is neither needed nor disturbed (it lives in another network
namespace).
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from flowscope.lab.netns import Lab, LabError, sh

LAB_USER = "labuser"
LAB_UID = 47777
WEB_ADMIN = "admin"

# Files the web server offers: (name, size range in bytes, how many).
WEB_FILES: tuple[tuple[str, tuple[int, int], int], ...] = (
    ("small", (500, 20_000), 12),
    ("medium", (100_000, 1_000_000), 5),
    ("large", (4_000_000, 16_000_000), 2),
)


@dataclass
class Secrets:
    """Credentials made up per run; the brute-force wordlists may or may not hold them."""

    ssh_password: str
    ftp_password: str
    web_password: str


def _need(tool: str) -> str:
    for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        p = Path(d) / tool
        if p.exists():
            return str(p)
    raise LabError(f"{tool} is not installed (run scripts/system-deps.sh as root)")


def make_secrets(rng: random.Random) -> Secrets:
    words = ["sunshine", "dragon", "letmein", "monkey", "shadow", "master", "qwerty", "football"]
    return Secrets(
        ssh_password=f"{rng.choice(words)}{rng.randint(10, 99)}",
        ftp_password=f"{rng.choice(words)}{rng.randint(10, 99)}",
        web_password=f"{rng.choice(words)}{rng.randint(10, 99)}",
    )


def _write_web_root(root: Path, rng: random.Random) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for stem, (lo, hi), n in WEB_FILES:
        for i in range(n):
            name = f"{stem}{i}.bin"
            (root / name).write_bytes(rng.randbytes(rng.randint(lo, hi)))
            names.append(name)
    (root / "index.html").write_text(
        "<html><body><h1>lab</h1>"
        + "".join(f'<a href="{n}">{n}</a> ' for n in names)
        + "</body></html>\n"
    )
    (root / "admin").mkdir(exist_ok=True)
    (root / "admin" / "index.html").write_text("<html>admin</html>\n")
    (root / "api").mkdir(exist_ok=True)
    (root / "api" / "index.html").write_text("{}\n")
    return names


def start_services(lab: Lab, work: Path, rng: random.Random, secrets: Secrets) -> dict[str, object]:
    """Write configs, start every server in its namespace and wait until each listens.

    Returns facts the clients need (file names on the web server, key paths…).
    """
    facts: dict[str, object] = {}
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    # --- web: nginx, HTTP + HTTPS (self-signed cert made now), basic-auth /admin/ ---
    web = lab.hosts["web"]
    ng = work / "nginx"
    for sub in ("tmp", "www"):
        (ng / sub).mkdir(parents=True, exist_ok=True)
    facts["web_files"] = _write_web_root(ng / "www", rng)
    sh(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", str(ng / "key.pem"), "-out", str(ng / "cert.pem"),
        "-subj", "/CN=web.lab.test",
        "-addext", f"subjectAltName=DNS:web.lab.test,DNS:www.lab.test,IP:{web.addr}",
    )  # fmt: skip
    hashed = sh("openssl", "passwd", "-apr1", secrets.web_password).strip()
    (ng / "htpasswd").write_text(f"{WEB_ADMIN}:{hashed}\n")
    (ng / "nginx.conf").write_text(f"""
user root;
worker_processes 1;
worker_rlimit_nofile 16384;
pid {ng}/nginx.pid;
error_log {logs}/nginx-error.log warn;
daemon off;
events {{ worker_connections 8192; }}
http {{
  access_log {logs}/nginx-access.log;
  client_body_temp_path {ng}/tmp/body; proxy_temp_path {ng}/tmp/proxy;
  fastcgi_temp_path {ng}/tmp/fcgi; uwsgi_temp_path {ng}/tmp/uwsgi; scgi_temp_path {ng}/tmp/scgi;
  types {{ text/html html; application/octet-stream bin; application/json json; }}
  default_type application/octet-stream;
  sendfile on;
  keepalive_timeout 20s;
  keepalive_requests 1000;
  client_body_timeout 30s;
  client_header_timeout 30s;
  server {{
    listen {web.addr}:80 reuseport;
    listen {web.addr}:443 ssl;
    server_name web.lab.test www.lab.test;
    ssl_certificate {ng}/cert.pem;
    ssl_certificate_key {ng}/key.pem;
    root {ng}/www;
    location /admin/ {{ auth_basic "lab admin"; auth_basic_user_file {ng}/htpasswd; }}
    location /api/ {{ error_page 405 =200 /api/index.html; }}
  }}
}}
""")
    lab.spawn(
        "web",
        [
            _need("nginx"),
            "-p",
            str(ng),
            "-e",
            str(logs / "nginx-error.log"),
            "-c",
            str(ng / "nginx.conf"),
        ],
        stderr=open(logs / "nginx.out", "wb"),  # noqa: SIM115
    )

    # --- dns: dnsmasq authoritative-ish for lab.test, no upstream, no system files ---
    dns = lab.hosts["dns"]
    names = [f"{h.name}.lab.test" for h in lab.hosts.values()]
    records = "".join(f"{h.addr} {h.name}.lab.test\n" for h in lab.hosts.values())
    extra = [f"host{i}.lab.test" for i in range(1, 60)]
    records += "".join(f"{lab.subnet_prefix}.{100 + i % 100} {n}\n" for i, n in enumerate(extra))
    records += f"{web.addr} www.lab.test\n"
    (work / "dns-hosts").write_text(records)
    facts["dns_names"] = [*names, *extra, "www.lab.test"]
    lab.spawn(
        "dns",
        [
            _need("dnsmasq"), "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            f"--addn-hosts={work / 'dns-hosts'}", f"--listen-address={dns.addr}",
            "--bind-interfaces", "--except-interface=lo", "--local=/lab.test/", "--domain=lab.test",
            "--txt-record=lab.test,flowscope traffic lab", "--mx-host=lab.test,mail.lab.test,10",
            f"--pid-file={work / 'dnsmasq.pid'}", "--user=root", "--group=root",
            f"--log-facility={logs / 'dnsmasq.log'}", "--cache-size=0",
        ],
    )  # fmt: skip

    # --- ssh: openssh with its own host keys and config; lab user via /etc/netns ---
    ssh = lab.hosts["ssh"]
    sd = work / "ssh"
    home = work / "home"
    sd.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    (home / "notes.txt").write_text("lab notes\n" * 50)
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(sd / "host_ed25519"))
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(sd / "client_ed25519"))
    (sd / "authorized_keys").write_text((sd / "client_ed25519.pub").read_text())
    import os

    os.chown(home, LAB_UID, LAB_UID)
    os.chown(home / "notes.txt", LAB_UID, LAB_UID)
    etc = lab.etc_dir("ssh")
    pw_hash = sh("openssl", "passwd", "-6", secrets.ssh_password).strip()
    (etc / "passwd").write_text(
        Path("/etc/passwd").read_text() + f"{LAB_USER}:x:{LAB_UID}:{LAB_UID}:lab:{home}:/bin/sh\n"
    )
    (etc / "group").write_text(Path("/etc/group").read_text() + f"{LAB_USER}:x:{LAB_UID}:\n")
    (etc / "shadow").write_text(
        Path("/etc/shadow").read_text() + f"{LAB_USER}:{pw_hash}:19000:0:99999:7:::\n"
    )
    (etc / "shadow").chmod(0o640)
    (sd / "sshd_config").write_text(f"""
Port 22
ListenAddress {ssh.addr}
HostKey {sd}/host_ed25519
PidFile {sd}/sshd.pid
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
AllowUsers {LAB_USER}
AuthorizedKeysFile {sd}/authorized_keys
StrictModes no
MaxStartups 200:30:400
MaxAuthTries 6
LoginGraceTime 20
UseDNS no
PrintMotd no
Subsystem sftp internal-sftp
""")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    lab.spawn(
        "ssh",
        [_need("sshd"), "-D", "-e", "-f", str(sd / "sshd_config")],
        stderr=open(logs / "sshd.log", "wb"),  # noqa: SIM115
    )
    facts["ssh_key"] = str(sd / "client_ed25519")

    # --- ftp: pyftpdlib (real FTP server), one virtual user, files to download ---
    ftp = lab.hosts["ftp"]
    fr = work / "ftproot"
    fr.mkdir(parents=True, exist_ok=True)
    ftp_files = []
    for i in range(6):
        n = f"file{i}.dat"
        (fr / n).write_bytes(rng.randbytes(rng.randint(2_000, 3_000_000)))
        ftp_files.append(n)
    facts["ftp_files"] = ftp_files
    lab.spawn(
        "ftp",
        [
            sys.executable, "-m", "flowscope.lab.ftpd", "--addr", ftp.addr, "--root", str(fr),
            "--user", LAB_USER, "--password", secrets.ftp_password,
        ],
        stderr=open(logs / "ftpd.log", "wb"),  # noqa: SIM115
    )  # fmt: skip

    # --- misc: iperf3 (bulk TCP), UDP echo (7) and daytime (13), TCP echo for idle ---
    misc = lab.hosts["misc"]
    lab.spawn("misc", [_need("iperf3"), "-s", "-B", misc.addr, "-p", "5201"])
    socat = _need("socat")
    lab.spawn("misc", [socat, f"UDP4-RECVFROM:7,bind={misc.addr},fork", "PIPE"])
    lab.spawn("misc", [socat, f"UDP4-RECVFROM:13,bind={misc.addr},fork", "SYSTEM:date"])
    lab.spawn("misc", [socat, f"TCP4-LISTEN:7,bind={misc.addr},fork,reuseaddr", "PIPE"])

    _wait_listening(
        lab,
        [
            ("web", "tcp", 80), ("web", "tcp", 443), ("dns", "udp", 53), ("ssh", "tcp", 22),
            ("ftp", "tcp", 21), ("misc", "tcp", 5201), ("misc", "udp", 7), ("misc", "tcp", 7),
        ],
        logs,
    )  # fmt: skip
    return facts


def _wait_listening(
    lab: Lab, wanted: list[tuple[str, str, int]], logs: Path, timeout: float = 20
) -> None:
    deadline = time.monotonic() + timeout
    pending = list(wanted)
    while pending and time.monotonic() < deadline:
        still = []
        for host, proto, port in pending:
            flag = "-ltnH" if proto == "tcp" else "-lunH"
            out = subprocess.run(
                lab.argv(host, ["ss", flag, f"sport = :{port}"]), capture_output=True, text=True
            ).stdout
            if not out.strip():
                still.append((host, proto, port))
        pending = still
        if pending:
            time.sleep(0.2)
    if pending:
        what = ", ".join(f"{h} {p}/{n}" for h, p, n in pending)
        raise LabError(f"lab servers did not start: {what} (see logs in {logs})")


LAB_PACKAGES = (
    "tcpdump", "iproute2", "ethtool", "openssl", "curl", "wget", "socat", "nmap", "hping3",
    "hydra", "patator", "slowhttptest", "apache2-utils", "iperf3", "nginx", "openssh-server",
    "openssh-client", "dnsmasq-base", "bind9-dnsutils",
)  # fmt: skip


def tool_versions() -> dict[str, str]:
    """Installed versions of the lab's tools (Debian package versions), for scenario.json."""
    out: dict[str, str] = {}
    try:
        p = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *LAB_PACKAGES],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
        for line in p.stdout.splitlines():
            name, _, ver = line.partition(" ")
            out[name] = ver or "missing"
    except (OSError, subprocess.TimeoutExpired):
        pass
    for name in LAB_PACKAGES:
        out.setdefault(name, "missing")
    try:
        import pyftpdlib

        out["pyftpdlib"] = str(pyftpdlib.__ver__)
    except Exception:  # pragma: no cover
        out["pyftpdlib"] = "missing"
    return out
