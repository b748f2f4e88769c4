"""SageMaker without AWS.

- The launcher (`stop-slu sagemaker`) submits to a local AWS emulator on loopback
  (moto in server mode): it receives the source upload and the CreateTrainingJob call,
  whose request must be the one `--dry-run` prints (and `--dry-run` needs no AWS at all).
- The entry point runs the way the container runs it (SageMaker's environment variables
  and /opt/ml-like folders) on a tiny mini-STOP: it trains, tests, and a usable model
  lands in SM_MODEL_DIR; the launcher's metric regexes match what it logged.

The launcher tests need `pip install -e '.[cloud-test]'` (the SageMaker SDK and moto)
and are skipped without it; the entry point needs neither.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import version
from types import SimpleNamespace

import pytest
import yaml
from conftest import REPO, TINY, Snapshots, checkpoints, run_cli, watched

from stop_slu.checkpoints import checkpoint_is_complete
from stop_slu.sagemaker.entry import (
    JobEnvironment,
    JobError,
    child_environment,
    recipe_arguments,
    training_command,
)
from stop_slu.sagemaker.launch import METRIC_DEFINITIONS, LaunchError, recipe_overrides


def _installed(*modules) -> bool:
    try:
        return all(importlib.util.find_spec(name) is not None for name in modules)
    except ModuleNotFoundError:
        return False


CLOUD_TEST = "pip install -e '.[cloud-test]'"
needs_sdk = pytest.mark.skipif(
    not _installed("sagemaker.train", "boto3"), reason=f"the SageMaker SDK is not installed ({CLOUD_TEST})"
)
needs_moto = pytest.mark.skipif(
    not _installed("sagemaker.train", "boto3", "moto.server"),
    reason=f"moto (the local AWS emulator) or the SageMaker SDK is not installed ({CLOUD_TEST})",
)

REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/stop-slu-training"
# Launcher options after HPARAMS on purpose: argparse hands them to the overrides first.
JOB = (
    "sagemaker",
    "mini",
    "--data",
    "s3://stop-data/stop",  # no trailing slash: the job still gets exactly the folder
    "--output",
    "s3://stop-runs/experiments/",
    "--role",
    ROLE,
    "--region",
    REGION,
    "--instance-count",
    "2",
    "--spot",
    "--max-hours",
    "3",
    "--number_of_epochs=3",
    "--precision=fp32",
)
RUN = r"s3://stop-runs/experiments/stop-slu-mini-\d{8}-\d{6}"  # OUTPUT/RUN_NAME: a new name at each launch
NO_AWS = {  # no credentials, no configuration, and any endpoint a closed local port
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
}


# ---- the launcher ------------------------------------------------------------
@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """--dry-run's output, from a process whose every network use is refused and recorded."""
    watch = tmp_path_factory.mktemp("dry_run") / "network.watch"
    result = run_cli(*JOB, "--dry-run", env={**NO_AWS, **watched(watch)}, timeout=300)
    return {**json.loads(result.stdout), "network use": watch.read_text()}


@needs_sdk
def test_dry_run_prints_the_whole_request_without_aws(dry_run):
    request = dry_run["CreateTrainingJob"]
    job = request["TrainingJobName"]
    run = request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    assert re.fullmatch(RUN, run) and job.startswith(run.rsplit("/", 1)[1] + "-")
    assert request["ResourceConfig"] == {"InstanceType": "ml.g5.2xlarge", "InstanceCount": 2, "VolumeSizeInGB": 100}
    algorithm = request["AlgorithmSpecification"]
    assert algorithm["TrainingImage"] == f"763104351884.dkr.ecr.{REGION}.amazonaws.com/pytorch-training:2.8-gpu-py312"
    assert {m["Name"]: m["Regex"] for m in algorithm["MetricDefinitions"]} == METRIC_DEFINITIONS
    assert request["RoleArn"] == ROLE
    assert request["HyperParameters"] == {"hparams": "job/mini.yaml", "number_of_epochs": "3", "precision": "fp32"}

    channels = {c["ChannelName"]: c for c in request["InputDataConfig"]}
    assert channels["stop"]["InputMode"] == "FastFile"
    assert channels["stop"]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://stop-data/stop/"
    code = channels["code"]["DataSource"]["S3DataSource"]["S3Uri"]
    assert code == f"{run}/{job}/input/code"  # the source travels with the run, under --output

    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3 * 3600, "MaxWaitTimeInSeconds": 6 * 3600}
    assert request["CheckpointConfig"] == {"S3Uri": f"{run}/checkpoints/", "LocalPath": "/opt/ml/checkpoints"}
    assert request["Environment"]["STOP_SLU_CHECKPOINT_DIR"] == "/opt/ml/checkpoints"

    sources = {uri[len(code) + 1 :] for uri in dry_run["uploads"] if uri.startswith(code + "/")}
    assert {
        "requirements.txt",
        "constraints.txt",
        "pyproject.toml",
        "job/mini.yaml",
        "stop_slu/sagemaker/entry.py",
        "recipes/STOP/train.py",
        "stop_slu/cli.py",
        "hparams/conformer.yaml",
    } <= sources
    assert not any(s.startswith(("tests/", ".venv/", ".git/")) or "__pycache__" in s for s in sources)
    assert dry_run["network use"] == ""  # not one connection or host name lookup


@pytest.fixture(scope="module")
def moto_aws(tmp_path_factory):
    """moto in server mode on 127.0.0.1, recording every request it receives."""
    folder = tmp_path_factory.mktemp("moto")
    os.environ["MOTO_RECORDER_FILEPATH"] = str(folder / "requests.jsonl")  # read when moto is imported
    import boto3
    from moto.moto_api import recorder
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    sdk_config = folder / "sagemaker-config.yaml"  # the SDK's own switch: no usage telemetry (an HTTP call)
    sdk_config.write_text("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n")
    env = {
        **NO_AWS,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(sdk_config),
        # The SDK checks the role with iam:SimulatePrincipalPolicy, which moto does not implement.
        "SAGEMAKER_VALIDATE_ROLE": "false",
    }
    aws = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    s3 = aws.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
    sagemaker = aws.client("sagemaker", endpoint_url=env["AWS_ENDPOINT_URL"])
    s3.create_bucket(Bucket="stop-runs", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.create_bucket(Bucket="stop-data", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="stop-data", Key="stop/manifests/train.tsv", Body=b"")  # the extracted release
    s3.put_object(Bucket="stop-data", Key="stop.tar.gz", Body=b"")  # its archive beside it: never read
    s3.put_object(Bucket="stop-data", Key="archive-only/stop.tar.gz", Body=b"")
    recorder.reset_recording()
    recorder.start_recording()
    yield SimpleNamespace(env=env, s3=s3, sagemaker=sagemaker, requests=folder / "requests.jsonl")
    recorder.stop_recording()
    server.stop()
    os.environ.pop("MOTO_RECORDER_FILEPATH", None)


def _received(requests_file, target: str) -> list[dict]:
    """Bodies of the JSON requests the emulator received for ``target`` (X-Amz-Target)."""
    bodies = []
    for line in requests_file.read_text().splitlines():
        entry = json.loads(line)
        if entry["headers"].get("X-Amz-Target") == target:
            body = base64.b64decode(entry["body"]) if entry["body_encoded"] else entry["body"]
            bodies.append(json.loads(body))
    return bodies


@needs_moto
def test_emulator_receives_the_upload_and_the_dry_run_request(moto_aws, dry_run):
    result = run_cli(*JOB, env=moto_aws.env, timeout=300)
    [request] = _received(moto_aws.requests, "SageMaker.CreateTrainingJob")[-1:]
    job = request["TrainingJobName"]
    run = request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    assert f"training job {job}: " in result.stdout  # (moto completes jobs at once)
    assert f"{run}/{job}/output/model.tar.gz" in result.stdout

    # What AWS received is what --dry-run printed (the job and run names carry their time).
    printed = dry_run["CreateTrainingJob"]

    def named(request):
        run = request["OutputDataConfig"]["S3OutputPath"].rstrip("/").rsplit("/", 1)[1]
        return json.loads(json.dumps(request).replace(request["TrainingJobName"], "JOB").replace(run, "RUN"))

    assert named(request) == named(printed)

    described = moto_aws.sagemaker.describe_training_job(TrainingJobName=job)
    assert described["ResourceConfig"]["InstanceCount"] == 2
    assert described["CheckpointConfig"]["S3Uri"] == f"{run}/checkpoints/"

    prefix = f"{run.split('/', 3)[3]}/{job}/input/"
    listing = moto_aws.s3.list_objects_v2(Bucket="stop-runs", Prefix=prefix)["Contents"]
    keys = {obj["Key"][len(prefix) :] for obj in listing}
    assert keys == {uri.split("/input/", 1)[1] for uri in dry_run["uploads"]}

    def read(key):
        return moto_aws.s3.get_object(Bucket="stop-runs", Key=prefix + key)["Body"].read().decode()

    # pip installs the package and transformers (SSL, Whisper) at the tested versions, keeping the image's torch
    assert read("code/requirements.txt") == "-c constraints.txt\n.[ssl]\n"
    constraints = read("code/constraints.txt").splitlines()
    assert {"torch==2.8.*", "torchaudio==2.8.*", f"speechbrain=={version('speechbrain')}"} <= set(constraints)
    assert read("code/job/mini.yaml") == (REPO / "hparams" / "mini.yaml").read_text()
    assert read("code/stop_slu/sagemaker/entry.py") == (REPO / "stop_slu/sagemaker/entry.py").read_text()
    # The container runs the entry point once per instance; it starts torchrun itself.
    assert json.loads(read("sm_drivers/sourcecode.json"))["entry_script"] == "stop_slu/sagemaker/entry.py"
    assert "basic_script_driver.py" in read("sm_drivers/sm_train.sh")


def _with(job, **options):
    """JOB with some of its launcher options replaced or added."""
    args = list(job)
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args[2:2] = [flag, value]
    return args


@needs_moto
def test_launcher_refuses_archives_running_runs_and_taken_names_and_resumes_by_name(moto_aws):
    from moto.sagemaker.models import sagemaker_backends

    # An archive-only prefix: refused, with the command that uploads the extracted tree.
    archive = run_cli(*_with(JOB, data="s3://stop-data/archive-only"), check=False, env=moto_aws.env)
    assert archive.returncode == 1 and len(archive.stderr.strip().splitlines()) == 1, archive.stderr
    assert "only the archive s3://stop-data/archive-only/stop.tar.gz" in archive.stderr
    assert "aws s3 sync stop/ s3://stop-data/archive-only/" in archive.stderr

    # Each launch is a new run; --resume NAME continues one (its checkpoint folder).
    first = run_cli(*JOB, env=moto_aws.env)
    (name,) = re.findall(r"--resume (\S+)", first.stdout)
    second = run_cli(*JOB, "--resume", name, env=moto_aws.env)
    requests = _received(moto_aws.requests, "SageMaker.CreateTrainingJob")
    assert requests[-1]["CheckpointConfig"] == requests[-2]["CheckpointConfig"]
    assert requests[-1]["CheckpointConfig"]["S3Uri"] == f"s3://stop-runs/experiments/{name}/checkpoints/"
    assert f"--resume {name}" in second.stdout

    # While a job of the run is running (the emulator set to say so), a relaunch is refused.
    job = requests[-1]["TrainingJobName"]
    sagemaker_backends["123456789012"][REGION].training_jobs[job].training_job_status = "InProgress"
    running = run_cli(*JOB, "--resume", name, check=False, env=moto_aws.env)
    assert running.returncode == 1 and f"its training job {job} is InProgress" in running.stderr

    # A new run's --job-name that already has checkpoints: that is --resume.
    moto_aws.s3.put_object(Bucket="stop-runs", Key="experiments/fixed-run/checkpoints/log.txt", Body=b"")
    taken = run_cli(*JOB, "--job-name", "fixed-run", check=False, env=moto_aws.env)
    assert taken.returncode == 1 and "continue it with --resume fixed-run" in taken.stderr


@needs_sdk
def test_missing_credentials_say_how_to_sign_in():
    result = run_cli(*JOB, check=False, env=NO_AWS, timeout=300)
    assert result.returncode == 1
    assert result.stderr.startswith("error: no AWS credentials found: run `aws configure`")
    assert "aws sso login" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_job_installs_the_versions_the_tests_run_with():
    """Every pin of the job's constraints is the version installed here (where the tests
    run), and every dependency of the package and of its ssl extra is pinned, but torch
    and torchaudio: the launcher pins those to the image's."""
    from stop_slu.sagemaker.launch import PINS, install_constraints

    pins = dict(line.split("==") for line in PINS.read_text().splitlines() if line and not line.startswith("#"))
    assert {name: version(name) for name in pins} == pins
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {
        re.split(r"[<>=\[ ;]", dep)[0] for dep in [*project["dependencies"], *project["optional-dependencies"]["ssl"]]
    }
    assert wanted - {"torch", "torchaudio"} <= set(pins)
    assert install_constraints("2.8").endswith("torch==2.8.*\ntorchaudio==2.8.*\n")


def test_launch_prints_a_labelled_cost_estimate_and_what_volume_gb_does():
    from stop_slu.sagemaker.launch import launch_notes

    args = SimpleNamespace(instance_type="ml.g5.2xlarge", instance_count=2, max_hours=3.0, spot=True, volume_gb=100)
    cost, storage = launch_notes(args)
    assert cost.startswith("cost estimate (not a measurement): 2 x ml.g5.2xlarge at $1.515/h on demand")
    assert "$3.03 per hour; at most $9 for --max-hours 3 before the spot discount" in cost
    assert storage.startswith("storage: ml.g5.2xlarge has local NVMe instance storage") and "--volume-gb 100" in storage
    (unknown,) = launch_notes(SimpleNamespace(**{**vars(args), "instance_type": "ml.m5.xlarge"}))
    assert unknown.startswith("cost estimate: no price on record for ml.m5.xlarge")


def test_launcher_errors_are_one_line_before_anything_is_built(tmp_path):
    mini = REPO / "hparams" / "mini.yaml"
    assert recipe_overrides(mini, ["--number_of_epochs=3", "--precision=bf16"]) == {
        "number_of_epochs": "3",
        "precision": "bf16",
    }
    with pytest.raises(LaunchError, match=f"^--number_of_epoch: {mini} has no key number_of_epoch; did you mean "):
        recipe_overrides(mini, ["--number_of_epoch=3"])  # a typo fails here, not on a paid instance
    nested = "max_batch_lenght under dynamic_batch_sampler_train; did you mean max_batch_length"
    with pytest.raises(LaunchError, match=nested):
        recipe_overrides(mini, ["--dynamic_batch_sampler_train={max_batch_lenght: 300}"])  # nested ones too

    missing = run_cli("sagemaker", "mini", "--data", "s3://stop-data/stop/", "--dry-run", check=False)
    assert (
        missing.returncode == 1 and missing.stderr.strip() == "error: --output is required (an s3://BUCKET/PREFIX/ URI)"
    )

    reserved = run_cli(*JOB, "--data_folder=/data", "--dry-run", check=False)
    assert reserved.returncode == 1 and "--data_folder: set by the job" in reserved.stderr

    # A base install, without the extra: a package named sagemaker that is not there.
    (tmp_path / "sagemaker").mkdir()
    (tmp_path / "sagemaker" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'sagemaker'\", name='sagemaker')\n"
    )
    no_sdk = run_cli(*JOB, "--dry-run", check=False, env={"PYTHONPATH": str(tmp_path)})
    assert no_sdk.returncode == 1
    assert no_sdk.stderr.strip().endswith("pip install 'stop-slu[sagemaker]'")
    assert len(no_sdk.stderr.strip().splitlines()) == 1


# ---- the entry point -------------------------------------------------------------
def _hyperparameters(overrides):
    """``--key=value`` overrides the way SageMaker passes hyperparameters: ``--key value``."""
    return [part for override in overrides for part in override.split("=", 1)]


@pytest.fixture(scope="module")
def container(mini_release, tmp_path_factory):
    """The entry point run as SageMaker runs it: channel, model and checkpoint folders
    and SM_* variables as the container has them; one instance without a GPU."""
    opt_ml = tmp_path_factory.mktemp("opt_ml")
    channel = opt_ml / "input" / "data" / "stop"
    shutil.copytree(mini_release, channel)
    (opt_ml / "model").mkdir()
    env = {
        "SM_CHANNELS": '["stop"]',
        "SM_CHANNEL_STOP": str(channel),
        "SM_MODEL_DIR": str(opt_ml / "model"),
        "SM_NUM_GPUS": "0",
        "SM_HOSTS": '["algo-1"]',
        "SM_CURRENT_HOST": "algo-1",
        "STOP_SLU_CHECKPOINT_DIR": str(opt_ml / "checkpoints"),
    }
    fast = ["--number_of_epochs=1", "--max_decode_ratio=0.1"]  # an untrained model decodes to the length limit
    hyperparameters = ["--hparams", "hparams/mini.yaml", *_hyperparameters([*TINY, *fast])]
    result = subprocess.run(
        [sys.executable, str(REPO / "stop_slu/sagemaker/entry.py"), *hyperparameters],
        cwd=opt_ml,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return SimpleNamespace(opt_ml=opt_ml, channel=channel, log=result.stdout + result.stderr)


def test_entry_point_trains_in_the_container_layout_and_exports_a_usable_model(container):
    checkpoints, model = container.opt_ml / "checkpoints", container.opt_ml / "model"
    # The recipe's output folder is the checkpoint folder SageMaker syncs: a restart resumes from it.
    assert len(list((checkpoints / "save").glob("CKPT+*"))) == 1
    assert "epoch: 1" in (checkpoints / "train_log.txt").read_text()
    assert json.loads((checkpoints / "metrics_test.json").read_text())["n"] == 16
    train_csv = (checkpoints / "data" / "train.csv").read_text()
    assert str(container.channel) in train_csv  # the data came from the channel

    for name in ("hyperparams.yaml", "model.ckpt", "normalizer.ckpt", "tokenizer/tokenizer.model"):
        assert (model / name).is_file(), name
    wav = sorted((container.channel / "test_1").rglob("*.wav"))[0]
    parsed = json.loads(run_cli("parse", model, wav).stdout)
    assert parsed["file"] == str(wav) and parsed["parse"].startswith("[IN:")


def test_metric_definitions_match_what_the_job_logs(container):
    for name, regex in METRIC_DEFINITIONS.items():
        values = re.findall(regex, container.log)
        assert values, f"{name}: {regex} matches nothing in the job's log"
        [float(value) for value in values]  # numbers SageMaker can plot
    assert re.findall(METRIC_DEFINITIONS["epoch"], container.log) == ["1"]


def test_environment_maps_onto_torchrun_across_gpus_and_instances(tmp_path, capsys):
    channel = tmp_path / "input" / "data" / "stop"
    (channel / "manifests").mkdir(parents=True)
    env = {
        "SM_CHANNEL_STOP": str(channel),
        "SM_MODEL_DIR": "/opt/ml/model",
        "SM_NUM_GPUS": "4",
        "SM_HOSTS": '["algo-2", "algo-1"]',
        "SM_CURRENT_HOST": "algo-2",
        "SM_CURRENT_INSTANCE_TYPE": "ml.p4d.24xlarge",
    }
    job = JobEnvironment.from_environ(env)
    args = recipe_arguments({"hparams": "hparams/conformer.yaml", "number_of_epochs": "30"}, job)
    assert args[1:] == [
        f"--data_folder={channel}",
        "--output_folder=/opt/ml/stop-slu-node",  # not the synced checkpoint folder: only the first instance's
        "--noprogressbar",
        "--number_of_epochs=30",
        "--warmup_steps=500",  # the config's 4000 steps over 8 processes
    ]
    assert capsys.readouterr().out == (
        "warm-up: warmup_steps 4000 / 8 processes = 500 optimiser steps (pass --warmup_steps to choose)\n"
    )
    command = training_command(job, args)
    assert command[1:12] == [
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc_per_node=4",
        "--node_rank=1",
        "--master_addr=algo-1",
        "--master_port=29500",
        "--rdzv_conf=timeout=1800",  # instances start minutes apart; preparation waits at the recipe's barrier
        str(REPO / "recipes/STOP/train.py"),
        str(REPO / "hparams/conformer.yaml"),
        f"--data_folder={channel}",
    ]
    assert not job.leads  # only the first instance exports the model
    # EFA on p4d/p5 across instances, as the SDK's torchrun driver sets it; never progress bars.
    child = child_environment(job, {})
    assert child == {"TQDM_DISABLE": "1", "FI_PROVIDER": "efa", "FI_EFA_USE_DEVICE_RDMA": "1", "RDMAV_FORK_SAFE": "1"}
    g5 = JobEnvironment.from_environ({**env, "SM_CURRENT_INSTANCE_TYPE": "ml.g5.12xlarge"})
    assert "FI_PROVIDER" not in child_environment(g5, {})

    single = JobEnvironment.from_environ(
        {**env, "SM_NUM_GPUS": "1", "SM_HOSTS": '["algo-1"]', "SM_CURRENT_HOST": "algo-1"}
    )
    assert training_command(single, args)[:2] == [sys.executable, str(REPO / "recipes/STOP/train.py")]
    assert single.leads

    with pytest.raises(JobError, match="set by the job"):
        recipe_arguments({"hparams": "hparams/mini.yaml", "output_folder": "/tmp/x"}, job)


def test_entry_point_outside_a_job_says_so_in_one_line():
    result = subprocess.run(
        [sys.executable, str(REPO / "stop_slu/sagemaker/entry.py"), "--hparams", "hparams/mini.yaml"],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("SM_")},
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: SM_CHANNEL_STOP and SM_MODEL_DIR not set: this runs inside a SageMaker training job with a "
        "'stop' input channel; submit it with `stop-slu sagemaker`"
    )


# ---- the rehearsal: a two-instance spot job, inside ----------------------------
def _process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (torchrun starts its workers in sessions of their own)."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid, *(p for child in children for p in _process_tree(int(child)))]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _opt_ml(root, release, hosts, current, port):
    """One instance's /opt/ml (its own disk) and the SM_* variables SageMaker sets."""
    opt_ml = root / "opt_ml"
    channel = opt_ml / "input" / "data" / "stop"
    if release is not None:
        shutil.copytree(release, channel)
    else:
        channel.mkdir(parents=True)
    for folder in ("model", "output", "checkpoints"):
        (opt_ml / folder).mkdir(parents=True, exist_ok=True)
    env = {
        "SM_CHANNELS": '["stop"]',
        "SM_CHANNEL_STOP": str(channel),
        "SM_MODEL_DIR": str(opt_ml / "model"),
        "SM_OUTPUT_DIR": str(opt_ml / "output"),
        "SM_NUM_GPUS": "0",
        "SM_HOSTS": json.dumps(hosts),
        "SM_CURRENT_HOST": current,
        "SM_MASTER_PORT": str(port),
        "SM_CURRENT_INSTANCE_TYPE": "ml.g5.2xlarge",
        "STOP_SLU_CHECKPOINT_DIR": str(opt_ml / "checkpoints"),
        "OMP_NUM_THREADS": "1",
    }
    return opt_ml, env


def _entry(env, hyperparameters, log, watch=None):
    """The entry point as the container starts it, in its own process group (one host)."""
    extra = watched(watch, under=watch.parent, refuse_network=False) if watch else {}
    return subprocess.Popen(
        [sys.executable, str(REPO / "stop_slu/sagemaker/entry.py"), *hyperparameters],
        cwd=REPO,
        env={**os.environ, **env, **extra},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_missing_data_fails_the_job_with_one_line_in_the_failure_file(tmp_path, mini_release):
    for case, release in (("empty", None), ("archive", None)):
        opt_ml, env = _opt_ml(tmp_path / case, release, ["algo-1"], "algo-1", 29500)
        if case == "archive":
            (opt_ml / "input/data/stop/stop.tar.gz").write_bytes(b"an archive")
        result = subprocess.run(
            [sys.executable, str(REPO / "stop_slu/sagemaker/entry.py"), "--hparams", "hparams/mini.yaml"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        failure = (opt_ml / "output" / "failure").read_text()
        assert result.returncode == 1 and failure == result.stderr, (case, result.stderr)
        assert failure.startswith("error: ") and failure.count("\n") == 1
        if case == "archive":  # the channel is read-only: the advice is to upload the extracted tree
            assert "holds stop.tar.gz but no extracted release" in failure and "aws s3 sync stop/" in failure
        else:
            assert "no STOP release in the data channel" in failure


@pytest.mark.slow  # two hosts train the tiny model, are killed, and resume on new disks
def test_rehearsal_two_hosts_spot_interruption_resume_and_export(mini_release, tmp_path):
    """SageMaker's inside, two instances: each its own /opt/ml; killed (kill -9) mid-epoch 2;
    the checkpoint folder restored on new instances from a copy made file by file at a
    random moment; then the job finishes, having skipped what was done."""
    hosts = ["127.0.0.1", "localhost"]  # sorted: the first leads and hosts the rendezvous
    hyperparameters = [
        "--hparams",
        "hparams/mini.yaml",
        *_hyperparameters(
            [*TINY, "--max_decode_ratio=0.05", "--number_of_epochs=2"]
            + ["--ckpt_interval_minutes=0", "--ckpt_interval_steps=2"]
        ),
    ]
    rng = random.Random()

    def start(attempt, restore=None):
        port, runs = _free_port(), []
        for current in hosts:
            root = tmp_path / attempt / current
            opt_ml, env = _opt_ml(root, mini_release, hosts, current, port)
            if restore is not None:  # SageMaker copies the checkpoint S3 URI to every instance before starting
                shutil.copytree(restore, opt_ml / "checkpoints", dirs_exist_ok=True)
            log = root / "log"
            with open(log, "w") as out:
                process = _entry(env, hyperparameters, out, root / "watch")
            runs.append(SimpleNamespace(opt_ml=opt_ml, log=log, watch=root / "watch", process=process))
        return runs

    # 1. Two instances start; while the lead's checkpoint folder is being copied file by file
    #    (the checkpoint sync), a spot interruption kills both (kill -9) mid-epoch 2.
    first = start("first")
    lead = first[0].opt_ml / "checkpoints"
    copies = Snapshots(lead, tmp_path / "s3", seed=rng.randrange(1000), pause=(0.2, 1.0))
    copies.start()
    deadline = time.time() + 600
    try:
        while (False, "2") not in checkpoints(lead / "save").values():
            assert all(r.process.poll() is None for r in first), [r.log.read_text()[-3000:] for r in first]
            assert time.time() < deadline, "no mid-epoch checkpoint in epoch 2"
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.5))
    finally:
        doomed = [pid for run in first for pid in _process_tree(run.process.pid)]  # torchrun's workers included
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for run in first:
            run.process.wait()
        copies.done = True
        copies.join()
    s3 = copies.taken[-1]  # the copy taken at a random moment, the last before the kill
    whole = [c for c in (s3 / "save").glob("CKPT+*") if checkpoint_is_complete(c)]
    assert whole, "no checkpoint copied whole before the interruption"
    newest = max(whole, key=lambda c: yaml.safe_load((c / "CKPT.yaml").read_text())["unixtime"])

    # 2. New instances, new disks, the copy restored: the job finishes.
    second = start("second", restore=s3)
    for run in second:
        run.process.wait(timeout=900)
    assert [r.process.returncode for r in second] == [0, 0], [r.log.read_text()[-3000:] for r in second]
    before = (s3 / "log.txt").read_text() if (s3 / "log.txt").is_file() else ""
    restarted = (second[0].opt_ml / "checkpoints" / "log.txt").read_text()[len(before) :]  # the second start's
    # Resume skipped what was done: it loaded the newest whole checkpoint the copy held.
    assert f"Loading a checkpoint from {second[0].opt_ml / 'checkpoints' / 'save' / newest.name}" in restarted
    epochs = re.findall(r"^epoch: (\d+)", (second[0].opt_ml / "checkpoints" / "train_log.txt").read_text(), re.M)
    assert epochs == ["1", "2"]  # each epoch once, across both starts
    # Both hosts tested the same weights (digests compared before decoding).
    (line,) = re.findall(r"test: model sha256 by rank: (.*)", restarted)
    assert len(set(line.split())) == 1 and len(line.split()) == 2
    # One exported model, from the lead; the other instance exports nothing.
    lead_model, other_model = (r.opt_ml / "model" for r in second)
    assert (lead_model / "hyperparams.yaml").is_file() and list(other_model.iterdir()) == []
    # Nothing was written into the read-only data channel, on any host, in either start.
    for run in (*first, *second):
        channel = str(run.opt_ml / "input" / "data" / "stop")
        written = [line for line in run.watch.read_text().splitlines() if channel in line]
        assert written == [], written[:5]
        assert not (run.opt_ml / "output" / "failure").exists()
    # The first job's check lines: what was restored, what the channel is.
    second_log = second[0].log.read_text()
    assert f"complete checkpoint(s) at the start, newest {newest.name}" in second_log
    assert re.search(r"check: data channel .* is (read-only|writable)", second_log)
    # No progress bars in the log (CloudWatch keeps every redraw).
    assert "\r" not in second[0].log.read_text()
