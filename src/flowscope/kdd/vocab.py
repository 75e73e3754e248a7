"""Names and vocabularies of the NSL-KDD data: the 41 features, categories, attack types.

Everything that must agree between training (KDDTrain+ rows) and run time (flowscope
flows) lives here, so the categorical codes a model was trained on are the codes the
detector produces. Categorical features enter the model matrix as vocabulary indices
(float32), which is also what :mod:`flowscope.models.rules` expects.
"""

from __future__ import annotations

# The 41 features in the order of the NSL-KDD files (and of field_names.csv).
KDD_FEATURES: tuple[str, ...] = (
    "duration",
    "protocol_type",
    "service",
    "flag",
    "src_bytes",
    "dst_bytes",
    "land",
    "wrong_fragment",
    "urgent",
    "hot",
    "num_failed_logins",
    "logged_in",
    "num_compromised",
    "root_shell",
    "su_attempted",
    "num_root",
    "num_file_creations",
    "num_shells",
    "num_access_files",
    "num_outbound_cmds",
    "is_host_login",
    "is_guest_login",
    "count",
    "srv_count",
    "serror_rate",
    "srv_serror_rate",
    "rerror_rate",
    "srv_rerror_rate",
    "same_srv_rate",
    "diff_srv_rate",
    "srv_diff_host_rate",
    "dst_host_count",
    "dst_host_srv_count",
    "dst_host_same_srv_rate",
    "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate",
    "dst_host_srv_diff_host_rate",
    "dst_host_serror_rate",
    "dst_host_srv_serror_rate",
    "dst_host_rerror_rate",
    "dst_host_srv_rerror_rate",
)
COLUMN: dict[str, int] = {name: j for j, name in enumerate(KDD_FEATURES)}

# Content features: Lee & Stolfo derived them from the payload (login attempts, shell
# prompts, file operations). flowscope does not inspect payload, so they are always 0.
CONTENT_FEATURES: tuple[str, ...] = KDD_FEATURES[9:22]

# Features flowscope cannot compute from flows and always reports as 0: the content
# features and wrong_fragment (the meter counts fragments but keeps no offsets, so it
# cannot tell an overlapping or oversized fragment from a good one).
ZERO_AT_RUNTIME: tuple[str, ...] = ("wrong_fragment", *CONTENT_FEATURES)

# Traffic features (the 2-second window, then the 100-connection window).
TIME_FEATURES: tuple[str, ...] = KDD_FEATURES[22:31]
HOST_FEATURES: tuple[str, ...] = KDD_FEATURES[31:41]
RATE_FEATURES: tuple[str, ...] = tuple(n for n in KDD_FEATURES if n.endswith("_rate"))

# ----------------------------------------------------------------- categorical values
PROTOCOLS: tuple[str, ...] = ("tcp", "udp", "icmp")

# The 70 services of NSL-KDD (KDDTrain+ and KDDTest+ use the same set), sorted as
# Python sorts them, so the codes do not depend on the order rows appear in a file.
SERVICES: tuple[str, ...] = (
    "IRC", "X11", "Z39_50", "aol", "auth", "bgp", "courier", "csnet_ns", "ctf", "daytime",
    "discard", "domain", "domain_u", "echo", "eco_i", "ecr_i", "efs", "exec", "finger", "ftp",
    "ftp_data", "gopher", "harvest", "hostnames", "http", "http_2784", "http_443", "http_8001",
    "imap4", "iso_tsap", "klogin", "kshell", "ldap", "link", "login", "mtp", "name",
    "netbios_dgm", "netbios_ns", "netbios_ssn", "netstat", "nnsp", "nntp", "ntp_u", "other",
    "pm_dump", "pop_2", "pop_3", "printer", "private", "red_i", "remote_job", "rje", "shell",
    "smtp", "sql_net", "ssh", "sunrpc", "supdup", "systat", "telnet", "tftp_u", "tim_i", "time",
    "urh_i", "urp_i", "uucp", "uucp_path", "vmnet", "whois",
)  # fmt: skip

# Bro/Zeek connection states that occur in NSL-KDD (RSTRH and SHR do not).
FLAGS: tuple[str, ...] = (
    "OTH", "REJ", "RSTO", "RSTOS0", "RSTR", "S0", "S1", "S2", "S3", "SF", "SH",
)  # fmt: skip

VOCABULARIES: dict[str, tuple[str, ...]] = {
    "protocol_type": PROTOCOLS,
    "service": SERVICES,
    "flag": FLAGS,
}
CATEGORICAL: tuple[str, ...] = tuple(VOCABULARIES)

PROTO = {name: i for i, name in enumerate(PROTOCOLS)}
SERVICE = {name: i for i, name in enumerate(SERVICES)}
FLAG = {name: i for i, name in enumerate(FLAGS)}

# Which states count as "SYN errors" and "REJ errors" in the *_serror_rate and
# *_rerror_rate features. Read off KDDTrain+ itself: in the rows whose window holds only
# the connection itself (count = 1), serror_rate is 1 exactly for S0, S1, S2, S3 and SH,
# and rerror_rate is 1 exactly for REJ, RSTO, RSTOS0 and RSTR (the same holds for the
# srv_ and dst_host_ variants). OTH and SF count as neither.
SERROR_FLAGS: tuple[str, ...] = ("S0", "S1", "S2", "S3", "SH")
RERROR_FLAGS: tuple[str, ...] = ("REJ", "RSTO", "RSTOS0", "RSTR")

# ----------------------------------------------------------------------- attack types
# KDD category of every attack type in KDDTrain+ and KDDTest+. The training types are in
# attack_types.csv; the 17 types only in the test set follow the DARPA 1998/1999
# evaluation taxonomy that Tavallaee et al. (2009) use for NSL-KDD.
ATTACK_CATEGORY: dict[str, str] = {
    "normal": "normal",
    # denial of service
    "back": "dos", "land": "dos", "neptune": "dos", "pod": "dos", "smurf": "dos",
    "teardrop": "dos", "apache2": "dos", "mailbomb": "dos", "processtable": "dos",
    "udpstorm": "dos",
    # probing
    "ipsweep": "probe", "nmap": "probe", "portsweep": "probe", "satan": "probe",
    "mscan": "probe", "saint": "probe",
    # remote to local
    "ftp_write": "r2l", "guess_passwd": "r2l", "imap": "r2l", "multihop": "r2l",
    "phf": "r2l", "spy": "r2l", "warezclient": "r2l", "warezmaster": "r2l",
    "httptunnel": "r2l", "named": "r2l", "sendmail": "r2l", "snmpgetattack": "r2l",
    "snmpguess": "r2l", "worm": "r2l", "xlock": "r2l", "xsnoop": "r2l",
    # user to root
    "buffer_overflow": "u2r", "loadmodule": "u2r", "perl": "u2r", "rootkit": "u2r",
    "ps": "u2r", "sqlattack": "u2r", "xterm": "u2r",
}  # fmt: skip
CATEGORIES: tuple[str, ...] = ("normal", "dos", "probe", "r2l", "u2r")

# flowscope families. Probing is scanning; the DoS category is dos; password guessing
# (guess_passwd over telnet/ftp/pop, snmpguess on SNMP community strings) is brute
# force; every other R2L and U2R attack is an exploit flowscope's families have no
# better name for ("other"). NSL-KDD has no web family worth the name: phf (a CGI
# exploit) has 4 training rows, and "back" (an Apache DoS) is DoS by the dataset's own
# category, so the model has no "web" class.
FAMILIES: tuple[str, ...] = ("benign", "scan", "dos", "bruteforce", "other")
_CATEGORY_FAMILY = {"normal": "benign", "dos": "dos", "probe": "scan", "r2l": "other",
                    "u2r": "other"}  # fmt: skip
_BRUTEFORCE = ("guess_passwd", "snmpguess")


def attack_family(attack: str) -> str:
    """flowscope family of an NSL-KDD label ("normal", "neptune", ...)."""
    if attack in _BRUTEFORCE:
        return "bruteforce"
    return _CATEGORY_FAMILY[ATTACK_CATEGORY[attack]]


ATTACK_FAMILY: dict[str, str] = {a: attack_family(a) for a in ATTACK_CATEGORY}
