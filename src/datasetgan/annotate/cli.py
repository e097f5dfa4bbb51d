"""``datasetgan annotate``: label generated samples in the browser, with the interpreter's help."""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import webbrowser

from datasetgan.annotate.config import AnnotateConfig, is_loopback
from datasetgan.core.errors import UserError
from datasetgan.core.options import add_config_flags, config_from_args, print_dry_run


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "annotate", help="label samples in a local web page, with suggestions from the interpreter",
        description="Serve a page for labelling the samples of S (masks or keypoints, as the spec says) into "
                    "L/<stem>.png (indexed with the spec's palette) or L/<stem>.json, saved a moment after "
                    "each change. Once 2 samples are labelled the interpreter trains in the background: "
                    "'suggest' pre-labels a sample, 'next' picks the one worth labelling. Only S and L are "
                    "read or written.")
    p.add_argument("--samples", required=True, metavar="S", help="folder written by `datasetgan sample`")
    p.add_argument("--spec", required=True, metavar="SPEC", help="label spec (YAML/JSON: classes, palette, keypoints)")
    p.add_argument("--labels", required=True, metavar="L", help="the labels folder (created if missing)")
    p.add_argument("--generator", metavar="CKPT", help="generator checkpoint (default: the one the samples recorded)")
    add_config_flags(p, AnnotateConfig)
    p.add_argument("--device", default="cpu", help="where the assistant runs: cpu, cuda or cuda:N (default: cpu)")
    p.set_defaults(func=run_annotate)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free one); a taken port is a ``UserError``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise UserError(f"--host {host} --port {port}: cannot listen there ({exc.strerror}); "
                        "pass another --port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://[{shown}]:{port}/" if ":" in shown and not shown.startswith("[") else f"http://{shown}:{port}/"


def run_annotate(args: argparse.Namespace) -> int:
    config = config_from_args(AnnotateConfig, args)
    if args.dry_run:
        print_dry_run(config, samples=args.samples, spec=args.spec, labels=args.labels, generator=args.generator)
        return 0
    import uvicorn

    from datasetgan.annotate.assist import Assistant
    from datasetgan.annotate.server import create_app
    from datasetgan.annotate.store import LabelStore, resolve_task
    from datasetgan.core.devices import resolve_device
    from datasetgan.labels import load_label_spec

    spec = load_label_spec(args.spec)
    store = LabelStore(args.samples, args.labels, spec, resolve_task(spec, config.task))
    device = resolve_device(args.device)
    assistant = Assistant(store, config, generator=args.generator, device=device)
    app = create_app(store, assistant, config)
    sock = bind_socket(config.host, config.port)
    url = url_of(config.host, sock.getsockname()[1])
    labelled = len(store.labelled())
    print(f"datasetgan annotate: {len(store.stems)} samples ({labelled} labelled, {store.task}) at {url}  "
          f"(Ctrl-C to stop)", flush=True)
    if not is_loopback(config.host):
        print(f"warning: --host {config.host} lets other machines read and write {store.labels}", file=sys.stderr)
    assistant.start()
    if config.open:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    try:
        server.run(sockets=[sock])
    finally:
        assistant.stop()
        sock.close()
    return 0
