#!/usr/bin/env python3
"""The entry point of a SageMaker training job (runs inside the container).

``stop-slu sagemaker`` (stop_slu/sagemaker/launch.py) uploads this repository
as the job's source folder; SageMaker installs it with pip and starts this script
once on every instance, with the job's hyperparameters as arguments:

    python stop_slu/sagemaker/entry.py --hparams hparams/conformer.yaml --number_of_epochs 30

It maps the container's environment onto the recipe's options:

    SM_CHANNEL_STOP           -> --data_folder: the STOP release (the "stop" input channel)
    STOP_SLU_CHECKPOINT_DIR   -> --output_folder of the first instance (default /opt/ml/checkpoints,
                                 the folder SageMaker syncs with the job's checkpoint S3 URI, so a
                                 spot interruption or a relaunch resumes from the last checkpoint);
                                 the other instances use a folder beside it that is not synced
                                 (NODE_FOLDER), into which the recipe copies what rank 0 writes
    SM_NUM_GPUS, SM_HOSTS,    -> one training process per GPU on every instance: plain
    SM_CURRENT_HOST              ``python train.py`` for one process, torchrun for several
    SM_CURRENT_INSTANCE_TYPE  -> EFA settings on instances with EFA (p4d, p4de, p5)
    SM_MODEL_DIR              <- the exported model, written by the first instance once
                                 training and testing are done (SageMaker uploads it as
                                 model.tar.gz)
    SM_OUTPUT_DIR             <- ``failure``: the one-line error of a job that failed, which
                                 SageMaker shows as the job's failure reason

The recipe prepares the CSVs and the tokenizer on its main process while the others
wait at a barrier (no preparation before torchrun's rendezvous); instances that do not
share its output folder receive them over torch.distributed (stop_slu/nodes.py). Every
other hyperparameter becomes a recipe override ``--KEY=VALUE`` (any YAML key or
SpeechBrain run option).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DATA_CHANNEL = "stop"  # the job's input channel holding the STOP release
CHECKPOINT_DIR_ENV = "STOP_SLU_CHECKPOINT_DIR"
CHECKPOINT_DIR_DEFAULT = "/opt/ml/checkpoints"  # SageMaker's default checkpoint path
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the uploaded source folder (this repository)
TRAIN_SCRIPT = SOURCE_ROOT / "recipes" / "STOP" / "train.py"
SET_HERE = ("data_folder", "output_folder")  # from the environment, never from hyperparameters
NODE_FOLDER = "stop-slu-node"  # beside the checkpoint folder: the other instances' output folder (not synced)
RENDEZVOUS_TIMEOUT_S = 1800  # torchrun's wait for every instance (start-up and pip install differ by minutes)
EFA_INSTANCES = ("ml.p4d.", "ml.p4de.", "ml.p5.", "ml.p5e.", "ml.p5en.")
EFA_ENVIRONMENT = {"FI_PROVIDER": "efa", "FI_EFA_USE_DEVICE_RDMA": "1", "RDMAV_FORK_SAFE": "1"}
WARMUP_KEY = "warmup_steps"
ARCHIVE_NAME = "stop.tar.gz"


class JobError(Exception):
    """A job that cannot start; the message says why and what to change."""


@dataclass(frozen=True)
class JobEnvironment:
    """What SageMaker tells the container, as the recipe needs it."""

    data_folder: Path
    output_folder: Path
    model_dir: Path
    gpus: int
    hosts: tuple[str, ...]  # sorted: the first one leads
    current_host: str
    master_port: int
    instance_type: str = ""
    output_dir: Path = Path("/opt/ml/output")

    @classmethod
    def from_environ(cls, env=os.environ) -> JobEnvironment:
        channel = f"SM_CHANNEL_{DATA_CHANNEL.upper()}"
        missing = [name for name in (channel, "SM_MODEL_DIR") if not env.get(name)]
        if missing:
            raise JobError(
                f"{' and '.join(missing)} not set: this runs inside a SageMaker training job with a "
                f"'{DATA_CHANNEL}' input channel; submit it with `stop-slu sagemaker`"
            )
        hosts = tuple(sorted(json.loads(env.get("SM_HOSTS") or '["algo-1"]')))
        current = env.get("SM_CURRENT_HOST") or hosts[0]
        checkpoints = Path(env.get(CHECKPOINT_DIR_ENV) or CHECKPOINT_DIR_DEFAULT)
        return cls(
            data_folder=Path(env[channel]),
            # Only the first instance writes into the synced checkpoint folder; the others
            # keep their copy of its files beside it (two uploaders of one S3 prefix would race).
            output_folder=checkpoints if current == hosts[0] else checkpoints.parent / NODE_FOLDER,
            model_dir=Path(env["SM_MODEL_DIR"]),
            gpus=int(env.get("SM_NUM_GPUS") or 0),
            hosts=hosts,
            current_host=current,
            master_port=int(env.get("SM_MASTER_PORT") or 29500),
            instance_type=env.get("SM_CURRENT_INSTANCE_TYPE") or "",
            output_dir=Path(env.get("SM_OUTPUT_DIR") or "/opt/ml/output"),
        )

    @property
    def processes_per_host(self) -> int:
        return max(self.gpus, 1)

    @property
    def world_size(self) -> int:
        return len(self.hosts) * self.processes_per_host

    @property
    def leads(self) -> bool:
        """The first instance exports the model (the others only train)."""
        return self.current_host == self.hosts[0]


def read_hyperparameters(argv) -> dict:
    """``--KEY VALUE`` pairs (how SageMaker passes hyperparameters; ``--KEY=VALUE`` too)."""
    options, args = {}, list(argv)
    while args:
        flag = args.pop(0)
        if not flag.startswith("--") or flag == "--":
            raise JobError(f"{flag}: unexpected argument; hyperparameters come as --KEY VALUE")
        key, has_value, value = flag[2:].partition("=")
        if not has_value:
            if not args:
                raise JobError(f"{flag}: hyperparameter without a value")
            value = args.pop(0)
        options[key] = value
    return options


def recipe_arguments(hyperparameters: dict, job: JobEnvironment) -> list[str]:
    """train.py's command line: the config, the job's folders, then the overrides."""
    options = dict(hyperparameters)
    config = options.pop("hparams", None)
    if not config:
        raise JobError("no 'hparams' hyperparameter: pass the config, e.g. hparams/conformer.yaml")
    clash = sorted(set(options) & set(SET_HERE))
    if clash:
        raise JobError(f"{', '.join(clash)}: set by the job from its channels and checkpoint folder; drop it")
    hparams_file = SOURCE_ROOT / config  # relative to the uploaded source folder (absolute paths kept)
    if not hparams_file.is_file():
        raise JobError(f"{hparams_file}: config not found in the job's source folder")
    if job.world_size > 1 and WARMUP_KEY not in options:
        options.update(scaled_warmup(hparams_file, job.world_size))
    return [
        str(hparams_file),
        f"--data_folder={release_folder(job.data_folder)}",
        f"--output_folder={job.output_folder}",
        "--noprogressbar",  # a job's log is a file: no progress bars
        *(f"--{key}={value}" for key, value in options.items()),
    ]


def training_command(job: JobEnvironment, recipe_args: list[str]) -> list[str]:
    """``python train.py ...`` for one process; torchrun with one process per GPU on
    every instance otherwise (the first instance hosts the rendezvous)."""
    if len(job.hosts) * job.processes_per_host == 1:
        return [sys.executable, str(TRAIN_SCRIPT), *recipe_args]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nnodes={len(job.hosts)}",
        f"--nproc_per_node={job.processes_per_host}",
        f"--node_rank={job.hosts.index(job.current_host)}",
        f"--master_addr={job.hosts[0]}",
        f"--master_port={job.master_port}",
        f"--rdzv_conf=timeout={RENDEZVOUS_TIMEOUT_S}",
        str(TRAIN_SCRIPT),
        *recipe_args,
    ]


def release_folder(channel: Path) -> Path:
    """The folder of the data channel that holds ``manifests/`` (the channel or its
    ``stop/``). The channel is read-only (FastFile mounts S3; File mode's copy is
    not to be changed either), so an archive is never extracted there: a channel
    holding ``stop.tar.gz`` is refused with the command that uploads the extracted
    tree. Raises JobError."""
    upload = (
        "extract it and upload the tree: tar -xzf stop.tar.gz && aws s3 sync stop/ s3://BUCKET/stop/, "
        "then pass --data s3://BUCKET/stop/"
    )
    candidates = [folder for folder in (channel, channel / "stop") if (folder / "manifests").is_dir()]
    if not candidates:
        if (channel / ARCHIVE_NAME).is_file():
            raise JobError(f"{channel}: the data channel holds {ARCHIVE_NAME} but no extracted release; {upload}")
        raise JobError(
            f"{channel}: no STOP release in the data channel (no manifests/ here or in stop/); "
            "--data must name the S3 folder that holds manifests/"
        )
    if (channel / ARCHIVE_NAME).is_file():
        raise JobError(
            f"{channel / ARCHIVE_NAME}: an archive beside the extracted release would be extracted again into the "
            f"read-only channel; remove it from the --data prefix (aws s3 rm s3://BUCKET/PREFIX/{ARCHIVE_NAME})"
        )
    return candidates[0]


def scaled_warmup(hparams_file: Path, world_size: int) -> dict:
    """The config's ``warmup_steps`` divided by the number of processes (each step
    then sees ``world_size`` batches, so the warm-up covers the same data), as an
    override; says so in one line. Empty for a config without that key."""
    match = re.search(rf"^{WARMUP_KEY}:\s*(\d+)", hparams_file.read_text(encoding="utf-8"), flags=re.M)
    if not match:
        return {}
    scaled = max(1, math.ceil(int(match[1]) / world_size))
    print(
        f"warm-up: {WARMUP_KEY} {match[1]} / {world_size} processes = {scaled} optimiser steps "
        f"(pass --{WARMUP_KEY} to choose)",
        flush=True,
    )
    return {WARMUP_KEY: str(scaled)}


def child_environment(job: JobEnvironment, env=os.environ) -> dict:
    """The training processes' environment: no progress bars (the log is CloudWatch),
    NCCL's network interface across instances, and on EFA instances the settings of
    the SageMaker SDK's own torchrun driver (RDMAV_FORK_SAFE matters with forking
    data-loader workers)."""
    child = {**env, "TQDM_DISABLE": "1"}
    if len(job.hosts) > 1 and env.get("SM_NETWORK_INTERFACE_NAME"):
        child["NCCL_SOCKET_IFNAME"] = env["SM_NETWORK_INTERFACE_NAME"]  # NCCL across instances
    if len(job.hosts) > 1 and job.instance_type.startswith(EFA_INSTANCES):
        for name, value in EFA_ENVIRONMENT.items():
            child.setdefault(name, value)
    return child


def job_checks(job: JobEnvironment, env=os.environ) -> list[str]:
    """``check:`` lines the job prints at its start: what the SageMaker behaviours
    docs/sagemaker.md relies on look like on this instance (the rehearsal in
    tests/e2e/test_sagemaker.py assumes them), so a first job shows them."""
    import torch

    from stop_slu.checkpoints import checkpoint_is_complete

    save = job.output_folder / "save"
    restored = sorted(p.name for p in save.glob("CKPT+*") if checkpoint_is_complete(p)) if save.is_dir() else []
    try:  # the mount's flags: nothing is written to find out
        read_only = bool(os.statvfs(job.data_folder).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    writable = "read-only" if read_only else "writable (the job never writes there)"
    versions = "torch " + torch.__version__
    try:
        import torchaudio

        versions += ", torchaudio " + torchaudio.__version__
    except ImportError:
        versions += ", no torchaudio"
    return [
        f"check: host {job.current_host} of {', '.join(job.hosts)}; {job.gpus} GPU(s); "
        f"instance {job.instance_type or 'unknown'}; {versions} (the image's)",
        f"check: data channel {job.data_folder} is {writable}; input mode {env.get('SM_INPUT_DATA_CONFIG', '?')}",
        f"check: output folder {job.output_folder}: {len(restored)} complete checkpoint(s) at the start"
        + (f", newest {restored[-1]}" if restored else " (a new run, or nothing restored from S3)"),
    ]


def write_failure(job_or_dir, line: str):
    """SageMaker shows /opt/ml/output/failure as the job's failure reason."""
    folder = job_or_dir.output_dir if isinstance(job_or_dir, JobEnvironment) else Path(job_or_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "failure").write_text(line + "\n")
    except OSError:
        pass  # outside a job: the line is in the log anyway


def run_training(command: list[str], env: dict) -> tuple[int, str | None]:
    """Run ``command``, its output passed through; returns its exit status and the
    last ``error:`` line it printed (the recipe's one-line error), if any."""
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, errors="replace")
    error = None
    for line in process.stderr:
        sys.stderr.write(line)
        found = re.search(r"(error: .*)", line)
        if found and line.lstrip().startswith(("error:", "[rank")):
            error = found[1].strip()
    return process.wait(), error


def export_model(job: JobEnvironment) -> Path:
    """The trained model as a self-contained folder in SM_MODEL_DIR."""
    from stop_slu.export import export_model as export

    return export(job.output_folder, job.model_dir)


def main(argv=None):
    """Inside the job: train (one process per GPU, torchrun across several), and on
    the first instance export to SM_MODEL_DIR. Exits with one ``error:`` line, also
    written to SM_OUTPUT_DIR/failure, for a job that cannot start or failed."""
    logging.basicConfig(level=logging.INFO, format="%(name)s - %(message)s")
    output_dir = os.environ.get("SM_OUTPUT_DIR") or "/opt/ml/output"
    try:
        job = JobEnvironment.from_environ()
        output_dir = job.output_dir
        recipe_args = recipe_arguments(read_hyperparameters(sys.argv[1:] if argv is None else argv), job)
        job.output_folder.mkdir(parents=True, exist_ok=True)
    except (JobError, ValueError, OSError) as error:  # one line in the job's log and its failure reason
        line = f"error: {error}"
        write_failure(output_dir, line)
        sys.exit(line)

    for line in job_checks(job):
        print(line, flush=True)
    command = training_command(job, recipe_args)
    print(f"[{job.current_host}] {shlex.join(command)}", flush=True)
    status, error = run_training(command, child_environment(job))
    if status:
        write_failure(job, error or f"error: training exited with status {status}; see the job's log in CloudWatch")
        sys.exit(status)
    if job.leads:
        print(f"model exported to {export_model(job)} (SageMaker uploads it as model.tar.gz)", flush=True)


if __name__ == "__main__":
    main()
