#!/usr/bin/env python3
"""The entry point of a SageMaker training job (runs inside the container).

``stop-slu sagemaker`` (stop_slu/sagemaker/launch.py) uploads this repository
as the job's source folder; SageMaker installs it with pip and starts this script
once on every instance, with the job's hyperparameters as arguments:

    python stop_slu/sagemaker/entry.py --hparams hparams/conformer.yaml --number_of_epochs 30

It maps the container's environment onto the recipe's options:

    SM_CHANNEL_STOP           -> --data_folder: the STOP release (the "stop" input channel)
    STOP_SLU_CHECKPOINT_DIR   -> --output_folder (default /opt/ml/checkpoints, the folder
                                 SageMaker syncs with the job's checkpoint S3 URI, so a spot
                                 interruption or a relaunch resumes from the last checkpoint)
    SM_NUM_GPUS, SM_HOSTS,    -> one training process per GPU on every instance: plain
    SM_CURRENT_HOST              ``python train.py`` for one process, torchrun for several
    SM_MODEL_DIR              <- the exported model, written by the first instance once
                                 training and testing are done (SageMaker uploads it as
                                 model.tar.gz)

Every instance first prepares the CSVs and the tokenizer on its own disk (the
instances share no disk, and the recipe prepares only in its main process; both
steps are deterministic, so every instance gets the same files and the recipe then
finds them ready). Every other hyperparameter becomes a recipe override
``--KEY=VALUE`` (any YAML key or SpeechBrain run option).
"""

from __future__ import annotations

import json
import logging
import os
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
        return cls(
            data_folder=Path(env[channel]),
            output_folder=Path(env.get(CHECKPOINT_DIR_ENV) or CHECKPOINT_DIR_DEFAULT),
            model_dir=Path(env["SM_MODEL_DIR"]),
            gpus=int(env.get("SM_NUM_GPUS") or 0),
            hosts=hosts,
            current_host=env.get("SM_CURRENT_HOST") or hosts[0],
            master_port=int(env.get("SM_MASTER_PORT") or 29500),
        )

    @property
    def processes_per_host(self) -> int:
        return max(self.gpus, 1)

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
    return [
        str(hparams_file),
        f"--data_folder={job.data_folder}",
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
        str(TRAIN_SCRIPT),
        *recipe_args,
    ]


def prepare_on_this_host(recipe_args: list[str]):
    """The CSVs and the tokenizer on this instance's disk, before training starts."""
    from hyperpyyaml import load_hyperpyyaml

    from stop_slu.recipe_args import parse_recipe_arguments
    from stop_slu.stages import build_tokenizer, prepare_data

    hparams_file, _, overrides = parse_recipe_arguments(recipe_args)
    with open(hparams_file, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, overrides)
    prepare_data(hparams)
    build_tokenizer(hparams)


def export_model(job: JobEnvironment) -> Path:
    """The trained model as a self-contained folder in SM_MODEL_DIR."""
    from stop_slu.export import export_model as export

    return export(job.output_folder, job.model_dir)


def main(argv=None):
    """Inside the job: prepare on this instance, train (one process per GPU,
    torchrun across several), and on the first instance export to SM_MODEL_DIR.
    Exits with one ``error:`` line for a job that cannot start."""
    from stop_slu.data_prep.prepare import PrepareError

    logging.basicConfig(level=logging.INFO, format="%(name)s - %(message)s")
    try:
        job = JobEnvironment.from_environ()
        recipe_args = recipe_arguments(read_hyperparameters(sys.argv[1:] if argv is None else argv), job)
        job.output_folder.mkdir(parents=True, exist_ok=True)
        prepare_on_this_host(recipe_args)
    except (JobError, PrepareError, ValueError, OSError) as error:  # one line in the job's log
        sys.exit(f"error: {error}")

    env = dict(os.environ)
    if len(job.hosts) > 1 and os.environ.get("SM_NETWORK_INTERFACE_NAME"):
        env["NCCL_SOCKET_IFNAME"] = os.environ["SM_NETWORK_INTERFACE_NAME"]  # NCCL across instances
    command = training_command(job, recipe_args)
    print(f"[{job.current_host}] {shlex.join(command)}", flush=True)
    status = subprocess.run(command, env=env).returncode
    if status:
        sys.exit(status)
    if job.leads:
        print(f"model exported to {export_model(job)} (SageMaker uploads it as model.tar.gz)", flush=True)


if __name__ == "__main__":
    main()
