"""A real FTP server (pyftpdlib) for the lab's FTP host, run as its own process.

pyftpdlib's command line cannot shorten the pause after a failed login (3 s), which
would make a brute-force run of a few seconds see only a handful of attempts; this
entry point sets it to a fraction of a second and serves one virtual lab user.
"""

from __future__ import annotations

import argparse

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--addr", required=True)
    ap.add_argument("--port", type=int, default=21)
    ap.add_argument("--root", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    a = ap.parse_args()
    auth = DummyAuthorizer()
    auth.add_user(a.user, a.password, a.root, perm="elr")
    handler = FTPHandler
    handler.authorizer = auth
    handler.auth_failed_timeout = 0.2
    handler.passive_ports = range(40000, 40200)
    handler.banner = "lab ftp ready"
    server = FTPServer((a.addr, a.port), handler)
    server.max_cons = 512
    server.serve_forever(handle_exit=True)


if __name__ == "__main__":
    main()
