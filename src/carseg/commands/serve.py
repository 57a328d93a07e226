"""``catalyst-dl serve [MODEL]``: the background-removal HTTP service and its web page."""
import argparse
import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from carseg.commands.model_options import add_model_options, add_refine_on, load_predictor
from carseg.errors import CarsegError

if TYPE_CHECKING:
    from carseg.serve.keys import KeyStore


def serve(args: argparse.Namespace) -> None:
    """Load the model once, then serve until interrupted."""
    from functools import partial

    import torch
    import uvicorn

    from carseg.serve.app import Settings, create_app
    from carseg.serve.keys import ENV, keys_from, parse_rate
    from carseg.serve.protocol import HeaderTimeout
    from carseg.serve.url_fetch import parse_hosts

    for name in ("max_upload_mb", "max_megapixels", "max_instances", "timeout", "header_timeout", "max_batch",
                 "workers", "threads"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            raise CarsegError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be positive")
    if not 1 <= args.port <= 65535:
        raise CarsegError(f"--port {args.port}: give a TCP port from 1 to 65535 (default 8080)")
    keys = keys_from(args.api_keys)
    access = access_line(args, keys, ENV)
    rate = parse_rate(args.rate_limit) if args.rate_limit else None
    hosts = tuple(parse_hosts(args.allow_url_fetch)) if args.allow_url_fetch is not None else ()
    torch.set_num_threads(args.threads)
    predictor = load_predictor(args, announce=False)
    settings = Settings(max_upload_mb=args.max_upload_mb, max_megapixels=args.max_megapixels,
                        max_instances=args.max_instances, timeout_s=args.timeout,
                        max_batch=args.max_batch or predictor.default_batch_size, max_wait_ms=args.max_wait_ms,
                        workers=args.workers, rate_limit=rate, url_fetch=hosts, refine_on=args.refine_on)
    print(f"catalyst-dl serve: {predictor.metadata.model} on {predictor.device}, precision {predictor.precision}, batches of up to {settings.max_batch}; web page and API at "
          f"http://{args.host}:{args.port}/ (API documentation at /docs, the remove.bg API at /v1.0/removebg)", flush=True)
    print(f"catalyst-dl serve: {access}" + (f"; at most {rate} requests a minute per key" if rate else "")
          + (f"; image_url fetched from {', '.join(hosts)} only" if hosts else "; image_url is not fetched"), flush=True)
    uvicorn.run(create_app(predictor, settings, keys), host=args.host, port=args.port, log_level=args.log_level,
                http=partial(HeaderTimeout, header_timeout=args.header_timeout))


def loopback(host: str) -> bool:
    """Whether ``host`` is an address only this machine reaches."""
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def access_line(args: argparse.Namespace, keys: Optional["KeyStore"], env: str) -> str:
    """Who may use the service, said at start-up; serving every address without keys needs --no-auth."""
    if keys is not None and args.no_auth:
        raise CarsegError(f"--no-auth with API keys (--api-keys or {env}): give one")
    if keys is not None:
        return f"{len(keys)} API key(s); clients send one in the X-Api-Key header"
    if not loopback(args.host) and not args.no_auth:
        raise CarsegError(f"--host {args.host}: anyone who can reach it could use the service; give API keys "
                          f"(--api-keys FILE or {env}), or --no-auth to serve without them")
    if args.no_auth:
        return f"NO API KEYS (--no-auth): anyone who can reach {args.host}:{args.port} can use the service"
    return "no API keys: only this machine can reach it (loopback)"


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``serve`` subcommand's options."""
    parser = commands.add_parser("serve", help="HTTP service and web page for background removal")
    add_model_options(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--max-batch", type=int, help="photos per forward pass at most (1: batching off; default: the "
                        "Predictor's batch size, 32 on GPU, on CPU 8 at 128x192 down to 1 at 512x768: 1 for the general model, 2 for studio)")
    parser.add_argument("--max-wait-ms", type=float, default=10.0, help="how long a batch waits to fill (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="threads decoding photos and encoding cut-outs")
    add_refine_on(parser, "in the --workers threads")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the forward pass (default 1: "
                        "on 2 shared cores 2 threads stall on each other and on the decode/encode threads, benchmarks/README.md)")
    parser.add_argument("--max-upload-mb", type=float, default=25.0, help="largest upload (default 25; over: 413)")
    parser.add_argument("--max-megapixels", type=float, default=40.0, help="largest photo, and largest picture in "
                        "an answer: crop margins and canvas included (default 40; over: 413)")
    parser.add_argument("--max-instances", type=int, default=20, help="most cars in an instances=true answer, whose "
                        "pictures hold at most twice --max-megapixels in all (default 20; over: 413)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request at most; its work stops "
                        "there (default 60; over: 504)")
    parser.add_argument("--header-timeout", type=float, default=10.0, help="seconds a client has to send a request's "
                        "headers, from connecting or from its previous answer (default 10; over: the connection is closed)")
    parser.add_argument("--api-keys", type=Path, metavar="FILE", help="the API keys clients must send in the "
                        "X-Api-Key header, one a line (or hashed: sha256: and the key's SHA-256 in hex); also from the "
                        "environment variable CARSEG_API_KEYS (comma-separated); a bad or missing key is 403")
    parser.add_argument("--no-auth", action="store_true", help="serve a non-loopback --host without API keys "
                        "(refused otherwise)")
    parser.add_argument("--rate-limit", metavar="N/min", help="at most N requests a minute per API key (without "
                        "keys: in all); over: 429 with Retry-After")
    parser.add_argument("--allow-url-fetch", metavar="HOST[,HOST]", help="let image_url fetch from these hosts "
                        "(names, addresses or networks; loopback and private addresses only if listed), within "
                        "--max-upload-mb and 10 s; off by default")
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    parser.set_defaults(func=serve)
