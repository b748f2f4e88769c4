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
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest
from conftest import REPO, TINY, run_cli, watched

from stop_slu.sagemaker.entry import JobEnvironment, JobError, recipe_arguments, training_command
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
    "s3://stop-data/stop/",
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
RUN = "s3://stop-runs/experiments/stop-slu-mini"  # OUTPUT/JOB_NAME
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
    assert job.startswith("stop-slu-mini-")
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
    assert code == f"{RUN}/{job}/input/code"  # the source travels with the run, under --output

    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3 * 3600, "MaxWaitTimeInSeconds": 6 * 3600}
    assert request["CheckpointConfig"] == {"S3Uri": f"{RUN}/checkpoints/", "LocalPath": "/opt/ml/checkpoints"}
    assert request["Environment"]["STOP_SLU_CHECKPOINT_DIR"] == "/opt/ml/checkpoints"
    assert request["OutputDataConfig"]["S3OutputPath"] == f"{RUN}/"

    sources = {uri[len(code) + 1 :] for uri in dry_run["uploads"] if uri.startswith(code + "/")}
    assert {
        "requirements.txt",
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
    [request] = _received(moto_aws.requests, "SageMaker.CreateTrainingJob")
    job = request["TrainingJobName"]
    assert f"training job {job}: " in result.stdout  # (moto completes jobs at once)
    assert f"{RUN}/{job}/output/model.tar.gz" in result.stdout

    # What AWS received is what --dry-run printed (the job names carry their timestamp).
    printed = dry_run["CreateTrainingJob"]
    assert json.loads(json.dumps(request).replace(job, "JOB")) == json.loads(
        json.dumps(printed).replace(printed["TrainingJobName"], "JOB")
    )

    described = moto_aws.sagemaker.describe_training_job(TrainingJobName=job)
    assert described["ResourceConfig"]["InstanceCount"] == 2
    assert described["CheckpointConfig"]["S3Uri"] == f"{RUN}/checkpoints/"

    prefix = f"experiments/stop-slu-mini/{job}/input/"
    listing = moto_aws.s3.list_objects_v2(Bucket="stop-runs", Prefix=prefix)["Contents"]
    keys = {obj["Key"][len(prefix) :] for obj in listing}
    assert keys == {uri.split("/input/", 1)[1] for uri in dry_run["uploads"]}

    def read(key):
        return moto_aws.s3.get_object(Bucket="stop-runs", Key=prefix + key)["Body"].read().decode()

    assert read("code/requirements.txt") == ".\n"  # pip installs the package: pyproject.toml's dependencies
    assert read("code/job/mini.yaml") == (REPO / "hparams" / "mini.yaml").read_text()
    assert read("code/stop_slu/sagemaker/entry.py") == (REPO / "stop_slu/sagemaker/entry.py").read_text()
    # The container runs the entry point once per instance; it starts torchrun itself.
    assert json.loads(read("sm_drivers/sourcecode.json"))["entry_script"] == "stop_slu/sagemaker/entry.py"
    assert "basic_script_driver.py" in read("sm_drivers/sm_train.sh")


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


def test_environment_maps_onto_torchrun_across_gpus_and_instances():
    env = {
        "SM_CHANNEL_STOP": "/opt/ml/input/data/stop",
        "SM_MODEL_DIR": "/opt/ml/model",
        "SM_NUM_GPUS": "4",
        "SM_HOSTS": '["algo-2", "algo-1"]',
        "SM_CURRENT_HOST": "algo-2",
    }
    job = JobEnvironment.from_environ(env)
    args = recipe_arguments({"hparams": "hparams/conformer.yaml", "number_of_epochs": "30"}, job)
    assert args[1:] == [
        "--data_folder=/opt/ml/input/data/stop",
        "--output_folder=/opt/ml/checkpoints",
        "--noprogressbar",
        "--number_of_epochs=30",
    ]
    command = training_command(job, args)
    assert command[1:11] == [
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc_per_node=4",
        "--node_rank=1",
        "--master_addr=algo-1",
        "--master_port=29500",
        str(REPO / "recipes/STOP/train.py"),
        str(REPO / "hparams/conformer.yaml"),
        "--data_folder=/opt/ml/input/data/stop",
    ]
    assert not job.leads  # only the first instance exports the model

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
