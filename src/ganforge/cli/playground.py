"""`ganforge playground`: the local page to build, train and explore GANs live."""
from __future__ import annotations

import argparse

from ganforge.cli.common import FMT


def _port(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = -1
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535 (0: any free port), got {value}")
    return n


def add_parser(sub):
    p = sub.add_parser("playground", formatter_class=FMT, help="open a local page to train and explore GANs live",
                       description="Start a local server for the GAN playground page (images or 2-D points, "
                                   "layer editors, live training, export as a run) and print its URL, which "
                                   "carries the session token every API call needs.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on; anything but a loopback address "
                                                       "lets other machines reach the page (with the token)")
    p.add_argument("--port", type=_port, default=8000, help="port (0: any free port)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    p.add_argument("--runs", default="runs", metavar="DIR", help="folder of runs: exports go here, and the "
                                                                 "explore view lists the runs in it")
    p.set_defaults(func=cmd_playground)


def host_warning(host: str) -> str | None:
    from ganforge.playground.security import is_loopback

    if is_loopback(host):
        return None
    return (f"ganforge playground: warning: {host} is not a loopback address: other machines can reach the "
            "page; only the token in the URL keeps them out")


def cmd_playground(a) -> int:
    import socket
    import sys
    import webbrowser

    from ganforge.errors import ConfigError, require

    require("fastapi", "ganforge playground", "pip install fastapi uvicorn")
    require("uvicorn", "ganforge playground", "pip install fastapi uvicorn")
    import uvicorn

    from ganforge.devices import set_cpu_threads
    from ganforge.playground.app import create_app

    set_cpu_threads()  # as `ganforge train` does
    from ganforge.playground.security import is_loopback, loopback_names

    app = create_app(a.runs, hosts=loopback_names(a.host) if is_loopback(a.host) else None)
    family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((a.host, a.port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {a.host}:{a.port} ({e.strerror or e}): choose another --port "
                          "(0 picks a free one) or --host") from None
    sock.listen(128)  # connections queue from now on, so a browser opened before uvicorn runs still gets in
    port = sock.getsockname()[1]
    shown = f"[{a.host}]" if ":" in a.host else a.host
    url = f"http://{shown}:{port}/?token={app.state.token}"
    print(f"ganforge playground: {url}", flush=True)
    warning = host_warning(a.host)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    if a.open:
        webbrowser.open(url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
    return 0
