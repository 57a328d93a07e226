"""``catalyst-dl serve [MODEL]``: the background-removal HTTP service and its web page."""
import argparse

from carseg.commands.model_options import add_model_options, load_predictor
from carseg.errors import CarsegError


def serve(args: argparse.Namespace) -> None:
    """Load the model once, then serve until interrupted."""
    from functools import partial

    import torch
    import uvicorn

    from carseg.serve.app import Settings, create_app
    from carseg.serve.protocol import HeaderTimeout

    for name in ("max_upload_mb", "max_megapixels", "max_instances", "timeout", "header_timeout", "max_batch",
                 "workers", "threads"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            raise CarsegError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be positive")
    if not 1 <= args.port <= 65535:
        raise CarsegError(f"--port {args.port}: give a TCP port from 1 to 65535 (default 8080)")
    torch.set_num_threads(args.threads)
    predictor = load_predictor(args, announce=False)
    settings = Settings(max_upload_mb=args.max_upload_mb, max_megapixels=args.max_megapixels,
                        max_instances=args.max_instances, timeout_s=args.timeout,
                        max_batch=args.max_batch or predictor.default_batch_size, max_wait_ms=args.max_wait_ms, workers=args.workers)
    print(f"catalyst-dl serve: {predictor.metadata.model} on {predictor.device}, precision {predictor.precision}, batches of up to {settings.max_batch}; web page and API at "
          f"http://{args.host}:{args.port}/ (API documentation at /docs)", flush=True)
    uvicorn.run(create_app(predictor, settings), host=args.host, port=args.port, log_level=args.log_level,
                http=partial(HeaderTimeout, header_timeout=args.header_timeout))


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``serve`` subcommand's options."""
    parser = commands.add_parser("serve", help="HTTP service and web page for background removal")
    add_model_options(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--max-batch", type=int, help="photos per forward pass at most (1: batching off; default: the "
                        "Predictor's batch size, 8 on GPU, on CPU 8 at 128x192 down to 1 at 512x768: 1 for the general model, 2 for studio)")
    parser.add_argument("--max-wait-ms", type=float, default=10.0, help="how long a batch waits to fill (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="threads decoding photos and encoding cut-outs")
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
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    parser.set_defaults(func=serve)
