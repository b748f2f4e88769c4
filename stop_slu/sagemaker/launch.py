#!/usr/bin/env python3
"""Train on Amazon SageMaker with one command (``stop-slu sagemaker``).

    stop-slu sagemaker conformer --data s3://BUCKET/stop/ --output s3://BUCKET/runs/ \\
        --role arn:aws:iam::ACCOUNT:role/ROLE [--spot] [--wait] [--KEY=VALUE ...]

The job, built with the official SageMaker Python SDK (``sagemaker.train.ModelTrainer``,
``pip install 'stop-slu[sagemaker]'``):

- AWS's PyTorch training image (GPU) for ``--framework-version`` on ``--instance-type``
  x ``--instance-count`` (default one ml.g5.2xlarge: one NVIDIA A10G);
- the recipe as the source folder: this repository's package, configs and entry point
  plus the config given (as ``job/NAME.yaml``), installed in the container by pip
  (requirements.txt is ".": pyproject.toml's dependencies);
- the STOP release as the input channel ``stop``, FastFile mode by default (files are
  streamed from S3 as they are read: 50 GB is not copied first);
- the recipe's output folder is the job's checkpoint folder, synced with
  ``OUTPUT/JOB_NAME/checkpoints/``: after a spot interruption, or when the same command
  (same ``--job-name``) runs again, training resumes from the last checkpoint;
- one training process per GPU on every instance, under torchrun when there are several
  (stop_slu/sagemaker/entry.py decides from the container's GPUs and hosts);
- metric definitions for the lines the recipe logs: loss, token accuracy and EM in the
  SageMaker console;
- the exported model in ``OUTPUT/JOB_NAME/TRAINING_JOB_NAME/output/model.tar.gz``.

``--dry-run`` prints the CreateTrainingJob request the SDK builds, with every AWS call it
makes answered in this process: nothing is uploaded or submitted, no credentials needed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from stop_slu.sagemaker.entry import CHECKPOINT_DIR_DEFAULT, CHECKPOINT_DIR_ENV, DATA_CHANNEL, SET_HERE

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE_PARTS = ("pyproject.toml", "README.md", "stop_slu", "data_prep", "tokenizer", "recipes", "hparams")
SKIP_IN_SOURCE = ("__pycache__", "*.pyc", "*.egg-info")
ENTRY_SCRIPT = "stop_slu/sagemaker/entry.py"
DEFAULT_INSTANCE = "ml.g5.2xlarge"  # 1 x NVIDIA A10G (24 GB), 8 vCPUs, 32 GB of memory
DEFAULT_FRAMEWORK = "2.8"  # AWS's PyTorch training image (pytorch-training:2.8-gpu-py312)
DRY_RUN_ROLE = "arn:aws:iam::111122223333:role/DRY-RUN-ROLE"
PINS = Path(__file__).with_name("constraints.txt")
REQUIREMENTS = "-c constraints.txt\n.[ssl]\n"
RUNNING = ("InProgress", "Stopping")  # training job states that still write the run's checkpoints
CREDENTIALS_HINT = (
    "no AWS credentials found: run `aws configure` (access keys) or `aws configure sso` then "
    "`aws sso login --profile PROFILE` and set AWS_PROFILE=PROFILE; or use --dry-run, which needs none"
)
INSTALL_HINT = "pip install 'stop-slu[sagemaker]'"

# The lines the recipe logs (SpeechBrain's FileTrainLogger: one per epoch, one for the test):
#   speechbrain.utils.train_logger - epoch: 2, lr: 1.20e-04, steps: 12 - train loss: 61.23 -
#       valid loss: 58.01, valid ACC: 2.01e-01, valid EM: 0.00, valid EM_tree: 1.50e-01, ...
#   speechbrain.utils.train_logger - Epoch loaded: 2 - test loss: 57.20, test ACC: 2.13e-01,
#       test EM: 0.00, test EM_tree: ...
NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)"
METRIC_DEFINITIONS = {
    "epoch": rf"epoch: {NUMBER},",
    "train:loss": rf"train loss: {NUMBER}",
    "valid:loss": rf"valid loss: {NUMBER}",
    "valid:ACC": rf"valid ACC: {NUMBER}",
    "valid:EM": rf"valid EM: {NUMBER}",
    "valid:EM_tree": rf"valid EM_tree: {NUMBER}",
    "test:EM": rf"test EM: {NUMBER}",
    "test:EM_tree": rf"test EM_tree: {NUMBER}",
}


class LaunchError(ValueError):
    """A job that cannot be submitted; the message says why and what to change."""


# ---- command line ---------------------------------------------------------------
def _add_options(parser):
    parser.add_argument(
        "--data", metavar="S3_URI", help="the STOP release in S3: the folder holding manifests/ (required)"
    )
    parser.add_argument(
        "--output",
        metavar="S3_URI",
        help="where runs go: OUTPUT/JOB_NAME/checkpoints/ (the recipe's output folder) and "
        "OUTPUT/JOB_NAME/TRAINING_JOB_NAME/output/model.tar.gz (required)",
    )
    parser.add_argument(
        "--role",
        metavar="ARN",
        help="IAM role the job runs as (default: the SDK's default: your SageMaker "
        "execution role or the role you are signed in with)",
    )
    parser.add_argument(
        "--job-name",
        help="name of a new run: its checkpoint folder and training jobs' prefix "
        "(default: stop-slu-CONFIG-YYYYMMDD-HHMMSS, new at every launch)",
    )
    parser.add_argument(
        "--resume",
        metavar="NAME",
        help="continue the run NAME (printed at its launch) from its last checkpoint; "
        "refused while a training job of that run is in progress",
    )
    parser.add_argument("--instance-type", default=DEFAULT_INSTANCE, help="default: %(default)s")
    parser.add_argument("--instance-count", type=int, default=1, help="default: %(default)s")
    parser.add_argument("--volume-gb", type=int, default=100, help="storage per instance (default: %(default)s)")
    parser.add_argument(
        "--input-mode",
        choices=("FastFile", "File"),
        default="FastFile",
        help="FastFile streams the data from S3; File copies it to the instance first (default: %(default)s)",
    )
    parser.add_argument(
        "--spot",
        action="store_true",
        help="managed spot training: pay the spot price; interruptions resume from the last checkpoint",
    )
    parser.add_argument(
        "--max-hours", type=float, default=48, help="stop the job after this much training time (default: %(default)s)"
    )
    parser.add_argument(
        "--max-wait-hours",
        type=float,
        help="with --spot: give up after this long, waiting for capacity included (default: twice --max-hours)",
    )
    parser.add_argument(
        "--framework-version",
        default=DEFAULT_FRAMEWORK,
        help="PyTorch version of AWS's training image (default: %(default)s)",
    )
    parser.add_argument("--image-uri", help="another training image (default: AWS's PyTorch GPU image)")
    parser.add_argument("--region", help="AWS region (default: your AWS configuration's)")
    parser.add_argument("--wait", action="store_true", help="stream the job's log until it ends")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the CreateTrainingJob request and exit: nothing is uploaded or submitted",
    )


def add_arguments(parser: argparse.ArgumentParser):
    """``stop-slu sagemaker``'s arguments (stop_slu/cli.py adds them to its subcommand)."""
    _add_options(parser)
    parser.add_argument("hparams", help="config: a YAML path or a name from hparams/ (conformer, branchformer, mini)")
    parser.add_argument(
        "overrides",
        nargs=argparse.REMAINDER,
        help="--KEY=VALUE recipe overrides (YAML keys, SpeechBrain run options); "
        "the options above may also come after HPARAMS",
    )


def _take_options(args) -> list[str]:
    """argparse hands everything after HPARAMS to ``overrides``: take this command's own
    options back out of it; what is left are the recipe's overrides."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    _add_options(parser)
    _, overrides = parser.parse_known_args(args.overrides, namespace=args)
    return overrides


def _check_options(args):
    for name in ("data", "output"):
        uri = getattr(args, name)
        if not uri:
            raise LaunchError(f"--{name} is required (an s3://BUCKET/PREFIX/ URI)")
        if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?", uri):
            raise LaunchError(f"--{name} {uri}: not an S3 URI; expected s3://BUCKET/PREFIX/")
    for option, name in (("--job-name", args.job_name), ("--resume", args.resume)):
        if name and not re.fullmatch(r"[A-Za-z0-9](-?[A-Za-z0-9])*", name):
            raise LaunchError(f"{option} {name}: use letters, digits and single hyphens")
    if args.job_name and args.resume:
        raise LaunchError("--job-name names a new run, --resume an earlier one: pass one of them")
    if args.data.endswith((".tar.gz", ".tgz", ".tar")):
        raise LaunchError(
            f"--data {args.data}: an archive; the job reads the extracted release (the folder holding manifests/): "
            "tar -xzf stop.tar.gz && aws s3 sync stop/ s3://BUCKET/stop/, then --data s3://BUCKET/stop/"
        )
    args.data = args.data.rstrip("/") + "/"  # an exact folder: s3://B/stop would also match s3://B/stop.tar.gz
    if args.instance_count < 1:
        raise LaunchError(f"--instance-count {args.instance_count}: at least 1")
    if args.max_wait_hours is not None and not args.spot:
        raise LaunchError("--max-wait-hours applies to spot jobs only; add --spot or drop it")
    if args.spot and args.max_wait_hours is not None and args.max_wait_hours < args.max_hours:
        raise LaunchError(
            f"--max-wait-hours {args.max_wait_hours:g} is below --max-hours {args.max_hours:g}; "
            "SageMaker needs the wait to cover the training time"
        )


def recipe_overrides(hparams_file: Path, overrides: list[str]) -> dict:
    """``--KEY=VALUE`` arguments as {KEY: VALUE}, checked against the config and
    SpeechBrain's run options here, so a typo fails now rather than on a paid instance."""
    pairs = {}
    for arg in overrides:
        match = re.fullmatch(r"--([A-Za-z_]\w*)=(.*)", arg, flags=re.S)
        if not match:
            raise LaunchError(f"{arg}: neither an option of stop-slu sagemaker nor a --KEY=VALUE override")
        if match[1] in SET_HERE:
            raise LaunchError(
                f"--{match[1]}: set by the job (--data is the data, the checkpoint folder the output); drop it"
            )
        pairs[match[1]] = match[2]

    import speechbrain as sb
    from hyperpyyaml import resolve_references

    from stop_slu.recipe_args import OverrideError, parse_recipe_arguments

    job_folders = [f"--{key}=/job/{key}" for key in SET_HERE]  # set in the job; the config's placeholders
    try:  # every key, nested ones included, as the job's recipe will check it
        parse_recipe_arguments([str(hparams_file), *job_folders, *overrides])
    except OverrideError as error:
        raise LaunchError(str(error)) from None
    _, _, yaml_overrides = sb.parse_arguments([str(hparams_file), *job_folders, *overrides])  # run options set apart
    try:
        with open(hparams_file, encoding="utf-8") as f:
            resolve_references(f, yaml_overrides, overrides_must_match=True)
    except KeyError as error:
        key = re.search(r"Override '([^']+)'", str(error))
        name = key[1] if key else str(error)
        raise LaunchError(f"--{name}: neither a key of {hparams_file} nor a SpeechBrain run option") from None
    return pairs


# ---- the job -----------------------------------------------------------------------
def install_constraints(framework_version: str | None) -> str:
    """The job's pip constraints: the pins the tests ran with (constraints.txt beside
    this module) and, for AWS's image of ``framework_version``, its torch and
    torchaudio, so pip fails at install, rather than replacing them with PyPI wheels
    that do not match the image's CUDA or each other. None: another image
    (``--image-uri``), whose torch the constraints cannot name."""
    pins = PINS.read_text(encoding="utf-8")
    if framework_version:
        pins += f"torch=={framework_version}.*\ntorchaudio=={framework_version}.*\n"
    return pins


def stage_source(hparams_file: Path, folder: Path, framework_version: str | None = DEFAULT_FRAMEWORK) -> str:
    """Fill ``folder`` with the job's source: the package, the configs, the entry point,
    requirements.txt and the config given; returns the config's path inside it."""
    if not (REPO_ROOT / "pyproject.toml").is_file():
        raise LaunchError(
            f"{REPO_ROOT}: not a stop-slu clone; launch jobs from a clone "
            "(pip install -e '.[sagemaker]'), whose source the job uploads"
        )
    for part in SOURCE_PARTS:
        source = REPO_ROOT / part
        if source.is_dir():
            shutil.copytree(source, folder / part, ignore=shutil.ignore_patterns(*SKIP_IN_SOURCE))
        else:
            shutil.copy2(source, folder / part)
    (folder / "constraints.txt").write_text(install_constraints(framework_version))
    # pip install .[ssl]: pyproject.toml's dependencies and transformers (SSL and Whisper configs), at the
    # tested versions, over the image's torch and torchaudio (never replaced: see install_constraints)
    (folder / "requirements.txt").write_text(REQUIREMENTS)
    (folder / "job").mkdir()
    shutil.copy2(hparams_file, folder / "job" / hparams_file.name)
    return f"job/{hparams_file.name}"


def _run_names(args, hparams_file: Path, now=None) -> tuple[str, str]:
    """(run name, run folder URI): checkpoints and models of a run live in its folder.
    A new run gets a new name (the config and the time), so it never resumes another
    run's checkpoints; ``--resume NAME`` continues one."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
    config = re.sub(r"[^A-Za-z0-9]+", "-", hparams_file.stem).strip("-")
    name = args.resume or args.job_name or f"stop-slu-{config}-{stamp}"
    return name, f"{args.output.rstrip('/')}/{name}"


def check_run(session, args, run_name: str, run_uri: str):
    """Before submitting: the data prefix holds the extracted release (not an archive
    only); no training job of this run is still running (two jobs would write one
    checkpoint folder); a new ``--job-name`` has no checkpoints yet (that is
    ``--resume``). Raises LaunchError."""
    s3 = session.boto_session.client("s3")
    bucket, _, prefix = args.data[len("s3://") :].partition("/")
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/")
    folders = {p["Prefix"][len(prefix) :] for p in listing.get("CommonPrefixes", [])}
    if "manifests/" not in folders and not (
        "stop/" in folders
        and s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "stop/manifests/", MaxKeys=1).get("KeyCount")
    ):
        parent, _, leaf = prefix.rstrip("/").rpartition("/")
        beside = s3.list_objects_v2(Bucket=bucket, Prefix=f"{parent}/{leaf}" if parent else leaf, MaxKeys=50)
        archives = [
            o["Key"] for o in beside.get("Contents", []) + listing.get("Contents", []) if o["Key"].endswith(".tar.gz")
        ]
        what = f"only the archive s3://{bucket}/{archives[0]}" if archives else "no manifests/ folder"
        raise LaunchError(
            f"--data {args.data}: {what}; the job reads the extracted release (FastFile mounts it read-only): "
            f"tar -xzf stop.tar.gz && aws s3 sync stop/ {args.data} --only-show-errors"
        )
    sagemaker = session.boto_session.client("sagemaker")
    for status in RUNNING:
        for job in sagemaker.list_training_jobs(NameContains=run_name, StatusEquals=status)["TrainingJobSummaries"]:
            if job["TrainingJobName"].startswith(run_name + "-"):
                raise LaunchError(
                    f"{run_name}: its training job {job['TrainingJobName']} is {status}, writing "
                    f"{run_uri}/checkpoints/; wait for it, or stop it: aws sagemaker stop-training-job "
                    f"--training-job-name {job['TrainingJobName']}"
                )
    if args.job_name:
        bucket, _, key = f"{run_uri}/checkpoints/"[len("s3://") :].partition("/")
        if s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("KeyCount"):
            raise LaunchError(
                f"--job-name {run_name}: {run_uri}/checkpoints/ already holds a run; "
                f"continue it with --resume {run_name}, or choose another name"
            )


def _import_sdk():
    try:
        import boto3  # noqa: F401
        import sagemaker.train  # noqa: F401
    except ImportError as error:
        raise LaunchError(
            f"the SageMaker Python SDK is not installed (no module {error.name}); {INSTALL_HINT}"
        ) from None
    logging.getLogger("sagemaker.config").setLevel(logging.WARNING)  # "not applying SDK defaults from ..." lines


def _sagemaker_session(args, offline: bool):
    """The SDK session: staging uploads go under --output. ``offline``: every AWS call is
    answered by a recorder in this process (dry run)."""
    import boto3
    from sagemaker.core.config.config import load_sagemaker_config
    from sagemaker.core.helper.session_helper import Session

    bucket, _, prefix = args.output[len("s3://") :].partition("/")
    if offline:
        region = args.region or boto3.Session().region_name or "us-east-1"
        boto_session = boto3.Session(
            region_name=region, aws_access_key_id="dry-run", aws_secret_access_key="dry-run"
        )  # never used: nothing is signed
        recorder = OfflineAWS(boto_session, bucket)
        config = load_sagemaker_config()
        config.setdefault("SchemaVersion", "1.0")
        modules = config.setdefault("SageMaker", {}).setdefault("PythonSDK", {}).setdefault("Modules", {})
        modules["TelemetryOptOut"] = True  # the SDK's usage telemetry is an HTTP call too
    else:
        boto_session = boto3.Session(region_name=args.region)
        if not boto_session.region_name:
            raise LaunchError("no AWS region configured: pass --region (e.g. us-east-1) or run `aws configure`")
        recorder, config = None, None
    session = Session(
        boto_session=boto_session,
        default_bucket=bucket,
        default_bucket_prefix=prefix.strip("/") or None,
        sagemaker_config=config,
    )
    return session, recorder


def build_trainer(args, session, source_dir: str, hyperparameters: dict, job_name: str, run_uri: str):
    """The SDK's description of the job (submitted by ``train()``)."""
    from sagemaker.core import image_uris
    from sagemaker.core.training.configs import (
        Channel,
        CheckpointConfig,
        Compute,
        DataSource,
        MetricDefinition,
        OutputDataConfig,
        S3DataSource,
        SourceCode,
        StoppingCondition,
    )
    from sagemaker.train import ModelTrainer

    image = args.image_uri
    if not image:
        try:
            image = image_uris.retrieve(
                framework="pytorch",
                region=session.boto_region_name,
                version=args.framework_version,
                instance_type=args.instance_type,
                image_scope="training",
            )
        except ValueError as error:
            raise LaunchError(f"--framework-version {args.framework_version}: {error}") from None
    max_run = int(args.max_hours * 3600)
    data = Channel(
        channel_name=DATA_CHANNEL,
        input_mode=args.input_mode,
        data_source=DataSource(
            s3_data_source=S3DataSource(
                s3_data_type="S3Prefix", s3_uri=args.data, s3_data_distribution_type="FullyReplicated"
            )
        ),
    )
    trainer = ModelTrainer(
        sagemaker_session=session,
        role=args.role or (DRY_RUN_ROLE if args.dry_run else None),
        base_job_name=job_name,
        training_image=image,
        source_code=SourceCode(source_dir=source_dir, entry_script=ENTRY_SCRIPT, requirements="requirements.txt"),
        compute=Compute(
            instance_type=args.instance_type,
            instance_count=args.instance_count,
            volume_size_in_gb=args.volume_gb,
            enable_managed_spot_training=args.spot,
        ),
        stopping_condition=StoppingCondition(
            max_runtime_in_seconds=max_run,
            max_wait_time_in_seconds=int((args.max_wait_hours or 2 * args.max_hours) * 3600) if args.spot else None,
        ),
        input_data_config=[data],
        output_data_config=OutputDataConfig(s3_output_path=f"{run_uri}/"),
        checkpoint_config=CheckpointConfig(s3_uri=f"{run_uri}/checkpoints/", local_path=CHECKPOINT_DIR_DEFAULT),
        environment={CHECKPOINT_DIR_ENV: CHECKPOINT_DIR_DEFAULT, "PYTHONUNBUFFERED": "1"},
        hyperparameters=hyperparameters,
    )
    return trainer.with_metric_definitions(
        [MetricDefinition(name=name, regex=regex) for name, regex in METRIC_DEFINITIONS.items()]
    )


class OfflineAWS:
    """Answers the SDK's AWS calls in this process, for ``--dry-run``: each call is
    recorded and answered before it is signed or sent. CreateTrainingJob ends the run."""

    class Submitted(Exception):
        """The request is built: stop before anything is submitted."""

    def __init__(self, boto_session, bucket: str):
        self.bucket = bucket
        self.uploads: list[str] = []
        self.request: dict | None = None
        boto_session.events.register("before-parameter-build", self._record)
        boto_session.events.register("before-call", self._answer)

    def _record(self, params, model, **_):
        if model.name == "PutObject":
            self.uploads.append(f"s3://{params['Bucket']}/{params['Key']}")
        elif model.name == "CreateTrainingJob":
            self.request = dict(params)
            raise OfflineAWS.Submitted

    def _answer(self, model, **_):
        from botocore.awsrequest import AWSResponse

        call = f"{model.service_model.service_name}:{model.name}"
        answers = {
            "s3:PutObject": {"ETag": '"dry-run"'},
            "s3:ListBuckets": {"Buckets": [{"Name": self.bucket, "CreationDate": datetime.now(timezone.utc)}]},
            "iam:SimulatePrincipalPolicy": {
                "EvaluationResults": [{"EvalActionName": "s3:PutObject", "EvalDecision": "allowed"}],
                "IsTruncated": False,
            },
        }
        if call not in answers:
            raise LaunchError(
                f"dry run: the SageMaker SDK asked for {call}, which the dry run does not answer "
                "(a newer SDK?); run without --dry-run or report it"
            )
        return AWSResponse(None, 200, {}, None), answers[call]


def launch(args, hparams_file) -> dict:
    """Build the job, then print its request (``--dry-run``) or submit it."""
    hparams_file = Path(hparams_file)
    overrides = _take_options(args)
    _check_options(args)
    hyperparameters = recipe_overrides(hparams_file, overrides)
    _import_sdk()
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
    from sagemaker.core.helper.iam_role_resolver import RoleValidationError
    from sagemaker.core.utils.exceptions import SageMakerCoreError  # e.g. --wait on a job that failed

    job_name, run_uri = _run_names(args, hparams_file)
    with (
        tempfile.TemporaryDirectory(prefix="stop-slu-job-") as source_dir,
        contextlib.redirect_stdout(sys.stderr),
    ):  # the SDK's log goes to stderr; our summary to stdout
        config = stage_source(hparams_file, Path(source_dir), None if args.image_uri else args.framework_version)
        try:
            summary = _build_and_submit(args, source_dir, {"hparams": config, **hyperparameters}, job_name, run_uri)
        except NoCredentialsError:
            raise LaunchError(CREDENTIALS_HINT) from None
        except (BotoCoreError, ClientError, RoleValidationError, SageMakerCoreError) as error:
            raise LaunchError("SageMaker: " + " ".join(str(error).split())) from None
    for note in launch_notes(args):
        print(note, file=sys.stderr, flush=True)
    print(json.dumps(summary, indent=2, default=str) if args.dry_run else _describe(summary), flush=True)
    return summary


def _build_and_submit(args, source_dir: str, hyperparameters: dict, job_name: str, run_uri: str) -> dict:
    session, offline = _sagemaker_session(args, offline=args.dry_run)
    if not args.dry_run:
        check_run(session, args, job_name, run_uri)
    with _role_checks(enabled=not args.dry_run):
        trainer = build_trainer(args, session, source_dir, hyperparameters, job_name, run_uri)
    if args.dry_run:
        try:
            trainer.train(wait=False, logs=False)
        except OfflineAWS.Submitted:
            pass
        return {"CreateTrainingJob": offline.request, "uploads": offline.uploads}
    trainer.train(wait=args.wait, logs=args.wait)
    return _submitted(trainer, session.boto_region_name, run_uri)


@contextlib.contextmanager
def _role_checks(enabled: bool):
    """The SDK checks the role's IAM permissions when the trainer is built; a dry run
    skips that (it is an AWS call) through the SDK's own switch."""
    import os

    saved = os.environ.get("SAGEMAKER_VALIDATE_ROLE")
    if not enabled:
        os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("SAGEMAKER_VALIDATE_ROLE", None)
        else:
            os.environ["SAGEMAKER_VALIDATE_ROLE"] = saved


def _submitted(trainer, region: str, run_uri: str) -> dict:
    job = trainer._latest_training_job  # the SDK's handle on the job it created (as its docs show)
    name = job.training_job_name
    return {
        "training_job": name,
        "status": str(job.training_job_status),
        "console": f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/jobs/{name}",
        "logs": f"aws logs tail /aws/sagemaker/TrainingJobs --log-stream-name-prefix {name} --follow",
        "checkpoints": f"{run_uri}/checkpoints/",
        "model": f"{run_uri}/{name}/output/model.tar.gz",
        "run": run_uri.rsplit("/", 1)[1],
    }


# On-demand prices of SageMaker training instances in us-east-1, USD per hour (from the SageMaker
# pricing page; they vary by region and change): the estimate printed at launch.
PRICES = {
    "ml.g5.2xlarge": 1.515,
    "ml.g5.12xlarge": 7.09,
    "ml.g5.48xlarge": 20.36,
    "ml.g6.2xlarge": 1.222,
    "ml.p3.2xlarge": 3.825,
    "ml.p4d.24xlarge": 37.69,
    "ml.p5.48xlarge": 113.07,
}
# Instances whose storage is local NVMe (SageMaker ignores VolumeSizeInGB for them).
LOCAL_NVME = ("ml.p4d.", "ml.p4de.", "ml.p5.", "ml.p5e.", "ml.p5en.", "ml.g4dn.", "ml.g5.", "ml.g6.", "ml.g6e.")


def launch_notes(args) -> list[str]:
    """Lines printed at launch: the cost estimate (labelled as one) and what
    --volume-gb does on the instance chosen."""
    notes = []
    price = PRICES.get(args.instance_type)
    if price:
        hours, hourly = args.max_hours, args.instance_count * price
        spot = " before the spot discount" if args.spot else ""
        notes.append(
            f"cost estimate (not a measurement): {args.instance_count} x {args.instance_type} at ${price:g}/h "
            f"on demand (us-east-1) = ${hourly:.2f} per hour; at most ${hourly * hours:.0f} for --max-hours "
            f"{hours:g}{spot}; conformer takes about 8 min per epoch on one ml.g5.2xlarge "
            "(estimated: docs/sagemaker.md#what-an-epoch-costs-estimate)"
        )
    else:
        notes.append(f"cost estimate: no price on record for {args.instance_type}; see the SageMaker pricing page")
    if args.instance_type.startswith(LOCAL_NVME):
        notes.append(
            f"storage: {args.instance_type} has local NVMe instance storage of a fixed size, which SageMaker "
            f"mounts instead of an EBS volume; --volume-gb {args.volume_gb} does not enlarge it"
        )
    return notes


def _describe(summary: dict) -> str:
    return "\n".join(
        [
            f"training job {summary['training_job']}: {summary['status']}",
            f"console:     {summary['console']}",
            f"logs:        {summary['logs']}",
            f"checkpoints: {summary['checkpoints']}   (the recipe's output folder: train_log.txt, save/, ...)",
            f"model:       {summary['model']}   (when the job has completed)",
            f"resume:      the same command with --resume {summary['run']}   (a new launch starts a new run)",
        ]
    )
