"""`carbonshift train` (one training run, no deployment) and `carbonshift reap` (terminate what
carbonshift launched and nobody owns). Arguments are checked here, against the catalog; the
project's flows (`flows.cli`) run them."""

from __future__ import annotations

import argparse

from carbonshift.adhoc import ReapRequest, TrainRequest, adhoc_job, training_config
from carbonshift.catalog import default_catalog
from carbonshift.cli_args import duration
from carbonshift.project import run_project_module


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    train = sub.add_parser(
        "train", help="plan one job to start now and run its training (no deployment needed)"
    )
    train.add_argument("--jobs", required=True, help="job file (YAML)")
    train.add_argument("--job", required=True, metavar="NAME", help="the job to train")
    train.add_argument(
        "--compute",
        choices=["local", "cloud"],
        default="local",
        help="local: this machine (default); cloud: EC2 for aws: regions, GCE for gcp:",
    )
    train.add_argument("--region", help="run only there, e.g. aws:us-east-1")
    train.add_argument("--instance-type", help="run only on this type, e.g. g5.xlarge")
    train.add_argument("--store", help="checkpoint store: a folder, file://, s3:// or gs:// URI")
    train.add_argument(
        "--config",
        metavar="FILE",
        help="training settings (YAML): compute.aws / compute.gcp, monitor, forecast, ...",
    )
    train.add_argument("--json", action="store_true", help="print one JSON object")
    train.set_defaults(run=_train)

    reap = sub.add_parser(
        "reap", help="terminate carbonshift instances whose run ended or went silent"
    )
    reap.add_argument(
        "--region",
        action="append",
        required=True,
        help="where to look, e.g. aws:us-east-1 (repeat for more)",
    )
    reap.add_argument(
        "--stale-after",
        type=_stale_after,
        default=900.0,
        help="a heartbeat older than this means the run is lost (default 15m)",
    )
    reap.add_argument(
        "--compute",
        choices=["local", "cloud"],
        default="cloud",
        help="cloud (default): the regions' EC2/GCE; local: this machine's compute state",
    )
    reap.add_argument(
        "--config",
        metavar="FILE",
        help="the training settings the runs used (YAML): compute.aws / compute.gcp, blocks",
    )
    reap.add_argument("--json", action="store_true", help="print one JSON object")
    reap.set_defaults(run=_reap)


_stale_after = duration(positive=True, example="15m")


def _train(args: argparse.Namespace) -> int:
    request = TrainRequest(
        jobs=args.jobs,
        job=args.job,
        compute=args.compute,
        region=args.region,
        instance_type=args.instance_type,
        store=args.store,
        config=args.config,
        json_output=args.json,
    )
    job = adhoc_job(request, default_catalog())  # bad input fails here, before Prefect starts
    config = training_config(request)
    for region in job.regions:  # the job's own list (narrowed by --region); empty: any
        config.compute.check(region)
    return run_project_module("flows.cli", ["train", request.model_dump_json()])


def _reap(args: argparse.Namespace) -> int:
    catalog = default_catalog()
    regions = [catalog.region(r).key for r in args.region]
    request = ReapRequest(
        regions=regions,
        stale_after_s=args.stale_after,
        compute=args.compute,
        config=args.config,
        json_output=args.json,
    )
    config = training_config(request)  # bad settings fail here, before Prefect starts
    for region in regions:
        config.compute.check(region)
    return run_project_module("flows.cli", ["reap", request.model_dump_json()])
