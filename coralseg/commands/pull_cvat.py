"""``coralseg pull-cvat``: import a CVAT project's images and colony outlines into FiftyOne."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pull-cvat",
        help="import a CVAT project (images + polygons) into a FiftyOne dataset",
        description=(
            "Pull a CVAT project into a persistent FiftyOne dataset of the same name: each "
            "frame's image (downloaded once, original quality) and its polygons, polylines "
            "and masks as the 'gt_polylines' field; samples are tagged train/val/test from "
            "the task subset. Only completed tasks by default, and only those new or changed "
            "since the last pull."
        ),
        epilog=(
            "The server and credentials come from FiftyOne's CVAT variables "
            "FIFTYONE_CVAT_URL, FIFTYONE_CVAT_USERNAME and FIFTYONE_CVAT_PASSWORD, or a "
            "personal access token in CVAT_ACCESS_TOKEN; the options below override them."
        ),
    )
    parser.add_argument("project", metavar="PROJECT", help="CVAT project name or id")
    parser.add_argument(
        "--dataset", metavar="NAME", help="FiftyOne dataset name (default: the project's name)"
    )
    parser.add_argument(
        "--media-dir",
        metavar="DIR",
        help="folder for the images (default: <FiftyOne's default dataset dir>/coralseg/<dataset>)",
    )
    parser.add_argument(
        "--all-tasks",
        action="store_true",
        help="also pull tasks that are not completed",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="re-import every task, even those unchanged since the last pull",
    )
    parser.add_argument(
        "--mask-tolerance",
        type=float,
        metavar="PX",
        help="how far (pixels) mask outlines may move when simplified; 0 keeps them exact "
        "(default: half a pixel)",
    )
    server = parser.add_argument_group("CVAT server")
    server.add_argument("--url", help="server URL (default: $FIFTYONE_CVAT_URL)")
    server.add_argument("--username", help="user name (default: $FIFTYONE_CVAT_USERNAME)")
    server.add_argument("--password", help="password (default: $FIFTYONE_CVAT_PASSWORD)")
    server.add_argument(
        "--token", help="personal access token, instead of a password (default: $CVAT_ACCESS_TOKEN)"
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    # Imported here: cvat_pull loads cvat-sdk, and FiftyOne when it runs.
    from fiftyone_plugin import cvat_pull

    credentials = cvat_pull.resolve_credentials(
        url=args.url, username=args.username, password=args.password, token=args.token
    )
    options = {} if args.mask_tolerance is None else {"tolerance": args.mask_tolerance}
    report = cvat_pull.pull_cvat_project(
        credentials,
        args.project,
        dataset_name=args.dataset,
        media_dir=args.media_dir,
        all_tasks=args.all_tasks,
        force=args.force,
        **options,
    )
    print(report.summary())
    return 0
