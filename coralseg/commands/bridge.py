"""``coralseg bridge``: the CVAT webhook service that pre-annotates jobs going "in progress"."""

from __future__ import annotations

import argparse
import logging

from coral_core.errors import CoralsegError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bridge",
        help="serve CVAT's webhook: pre-annotate each job that goes 'in progress'",
        description=(
            "Run the CVAT bridge: a web service for CVAT's 'update:job' webhook and worker "
            "processes that pre-annotate each annotation job with the model named in the "
            "webhook URL when the job goes 'in progress'. Reruns replace only the shapes the "
            "model wrote before; shapes drawn or edited by people are never touched. Work is "
            "recorded before CVAT gets its answer and survives restarts."
        ),
        epilog=(
            "Configuration comes from the environment or ./.env: CVAT_URL, CVAT_ACCESS_TOKEN "
            "(or CVAT_USERNAME and CVAT_PASSWORD), WEBHOOK_SECRET, CORALSEG_MODELS (the model "
            "registry file), CORALSEG_QUEUE_URL (a SQLite file, default under CACHE_DIR, or "
            "redis://host:6379/0 to share the work between machines), CACHE_DIR, "
            "AUTO_ANN_TIMEOUT.\n\n"
            "examples:\n"
            "  coralseg bridge --port 8000 --workers 2\n"
            "  CORALSEG_QUEUE_URL=redis://127.0.0.1:6379/3 coralseg bridge --workers 4\n"
            "  CORALSEG_QUEUE_URL=redis://10.0.0.5:6379/3 coralseg bridge --no-server --workers 2"
            "   # workers only, on a second machine\n"
            "  curl http://localhost:8000/runs/42   # the runs of CVAT job 42"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (0.0.0.0)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes to start here, each with its own copy of the models (1); 0 for "
        "none, when workers run on other machines",
    )
    parser.add_argument(
        "--no-server", action="store_true", help="run workers only, without the web service"
    )
    parser.add_argument(
        "--unsigned",
        action="store_true",
        help="accept webhooks without a signature (only when WEBHOOK_SECRET cannot be set, "
        "on a trusted network)",
    )
    parser.add_argument(
        "--lazy", action="store_true", help="load each model on its first job, not at start"
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from cvat_bridge.service import serve
    from cvat_bridge.settings import BridgeSettings

    if args.workers < 0:
        raise CoralsegError("--workers must be 0 or more")
    if args.no_server and args.workers == 0:
        raise CoralsegError("--no-server with --workers 0 would run nothing")
    settings = BridgeSettings.from_env()
    if not settings.webhook_secret and not args.unsigned and not args.no_server:
        raise CoralsegError(
            "WEBHOOK_SECRET is not set: set it to the secret of the CVAT webhook, or pass "
            "--unsigned to accept unsigned webhooks on a trusted network"
        )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return serve(
        settings,
        host=args.host,
        port=args.port,
        workers=args.workers,
        web=not args.no_server,
        lazy=args.lazy,
    )
