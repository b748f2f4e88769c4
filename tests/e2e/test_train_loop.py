"""The training loop at full-run scale: batch order per epoch and across a
resume, feature statistics under DDP, gradient faults, checkpoints kept on
disk, and the cost of evaluation.

Real runs of the recipe through the CLI (tiny models on a mini-STOP), and a
real ``RobustBrain`` on a small network where a whole run is not needed.
"""

import re
import subprocess
import time

import pytest
import torch
from conftest import REPO, SOME_DOMAINS, kill_in_epoch_2, train, train_command
from speechbrain.core import INTRA_EPOCH_CKPT_FLAG
from speechbrain.nnet.schedulers import NoamScheduler
from speechbrain.utils.epoch_loop import EpochCounter

from stop_slu.brain import RobustBrain
from stop_slu.checkpoints import SafeCheckpointer

BATCH_LINE = re.compile(r"train batch: epoch (\d+) step (\d+) lr (\S+) ids (\S+)")
OPTIONS = [
    SOME_DOMAINS,
    "--number_of_epochs=2",
    "--log_batch_ids=True",
    "--valid_search_interval=1",
    "--valid_search_subset=1",
]


def trained_batches(log_text):
    """{(epoch, step): ids} of every training batch logged (``log_batch_ids``);
    a step trained again after a resume replaces the earlier entry."""
    return {(int(e), int(s)): ids for e, s, _, ids in BATCH_LINE.findall(log_text)}


@pytest.fixture(scope="module")
def whole_run(mini_release, tmp_path_factory):
    """A 2-epoch run listing its training batches; returns its output folder."""
    out = tmp_path_factory.mktemp("whole")
    train(mini_release, out, *OPTIONS)
    return out


# -- batch order ------------------------------------------------------------------


def test_each_epoch_has_its_own_order_and_a_resumed_run_trains_the_same_batches(mini_release, whole_run, tmp_path):
    whole = trained_batches((whole_run / "log.txt").read_text())
    epochs = {epoch: [ids for (e, _), ids in sorted(whole.items()) if e == epoch] for epoch in (1, 2)}
    assert len(epochs[1]) == len(epochs[2]) >= 3
    assert sorted(",".join(epochs[1]).split(",")) == sorted(",".join(epochs[2]).split(","))  # the same utterances
    assert epochs[1] != epochs[2]  # ... in another order

    out = tmp_path / "killed"
    command = train_command(mini_release, out, *OPTIONS, "--ckpt_interval_minutes=0", "--ckpt_interval_steps=1")
    kill_in_epoch_2(command, out)
    killed_at = trained_batches((out / "log.txt").read_text())
    assert max(killed_at)[0] == 2 and max(killed_at) < max(whole)  # killed inside epoch 2
    rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "Going into epoch 1" not in rerun.stdout  # resumed, not restarted
    assert trained_batches((out / "log.txt").read_text()) == whole


# -- gradients ----------------------------------------------------------------------


class Batch:
    """A training batch of the scripted network: ``kind`` picks its loss."""

    def __init__(self, kind):
        self.id = [kind]
        self.kind = kind

    def to(self, device):
        return self


class Scripted(RobustBrain):
    """A real RobustBrain on one weight vector. Loss kinds: ``ok`` (finite loss and
    gradients), ``nan_loss``, ``inf_grad`` (a finite loss whose gradient is
    infinite: d sqrt(w)/dw at w = 0), ``overflow`` (a loss of 0 with gradients
    of 1e20, too large once multiplied by the gradient scaler's scale). ``script`` maps (epoch, step) to a
    kind; every other batch is ``ok``. The LR schedule counts real updates."""

    def compute_forward(self, batch, stage):
        return self.modules.net.weight

    def compute_objectives(self, weight, batch, stage):
        kind = self.script.get((self._epoch, self.step), batch.kind)
        if kind == "nan_loss":
            return (weight * float("nan")).sum()
        if kind == "inf_grad":
            return torch.sqrt(weight[:1] - weight[:1].detach()).sum() + weight.sum()
        if kind == "overflow":
            steep = (weight * 1e20).sum()
            return steep - steep.detach()  # 0, with gradients of 1e20
        return (weight**2).sum()

    def on_optimizer_step(self):
        self.hparams.noam(self.optimizer)


def scripted_brain(tmp_path, script=None, **run_opts):
    net = torch.nn.Linear(1, 4, bias=False)
    torch.nn.init.constant_(net.weight, 1.0)
    brain = Scripted(
        modules={"net": net},
        opt_class=lambda params: torch.optim.SGD(params, lr=0.1),
        hparams={"noam": NoamScheduler(lr_initial=0.1, n_warmup_steps=10), "output_folder": str(tmp_path)},
        run_opts={"device": "cpu", "noprogressbar": True, **run_opts},
    )
    brain.script = script or {}
    return brain


def fit(brain, kinds, epochs=1):
    loader = torch.utils.data.DataLoader([Batch(k) for k in kinds], batch_size=None)
    brain.fit(EpochCounter(epochs), loader)
    return brain.modules.net.weight.detach().clone().reshape(-1)


def test_a_finite_loss_with_nonfinite_gradients_skips_the_step(tmp_path):
    brain = scripted_brain(tmp_path)
    weights = fit(brain, ["inf_grad"])
    assert bool((weights == 1.0).all())  # the weights never saw the infinite gradient
    assert brain.skipped_steps == 1 and brain.hparams.noam.n_steps == 0


def test_a_step_the_gradient_scaler_skipped_does_not_advance_the_schedule(tmp_path):
    brain = scripted_brain(tmp_path)
    brain.scaler = torch.amp.GradScaler("cpu", init_scale=1e20)  # fp16's scaler: scale 1e20, gradients 1e40 = inf
    assert brain.scaler.is_enabled()
    weights = fit(brain, ["nan_loss", "overflow"])
    assert bool((weights == 1.0).all())  # neither step reached the weights
    assert brain.scaler.get_scale() < 1e20  # the scaler skipped the second one
    assert brain.hparams.noam.n_steps == 0  # no learning-rate step for either
    assert brain.nonfinite_in_a_row == 1  # the scaler's skip did not reset the non-finite count
    assert brain.skipped_steps == 1  # its own skips are the scaler's business


def test_the_nonfinite_flag_does_not_leak_into_the_next_epoch(tmp_path):
    # 3 batches, 2 per optimiser step: the 3rd batch of epoch 1 (NaN loss) never
    # reaches a step; epoch 2's first step must not be skipped because of it.
    brain = scripted_brain(tmp_path, script={(1, 3): "nan_loss"}, grad_accumulation_factor=2)
    fit(brain, ["ok", "ok", "ok"], epochs=2)
    assert brain.skipped_steps == 0  # epoch 2
    assert brain.hparams.noam.n_steps == 2  # one real step per epoch


def test_the_first_optimiser_step_uses_the_first_warmup_rate(whole_run):
    rates = [float(lr) for _, _, lr, _ in BATCH_LINE.findall((whole_run / "log.txt").read_text())]
    lr_adam, warmup_steps = 0.0015, 600  # hparams/mini.yaml
    assert rates[0] == pytest.approx(lr_adam / warmup_steps)  # not lr_adam, the peak
    assert rates[1] == pytest.approx(2 * lr_adam / warmup_steps)


# -- disk ---------------------------------------------------------------------------


def test_only_the_checkpoints_averaging_needs_and_the_latest_stay_on_disk(tmp_path):
    model = torch.nn.Linear(4, 4)
    checkpointer = SafeCheckpointer(tmp_path, recoverables={"model": model})
    accuracies = [0.1, 0.5, 0.3, 0.9, 0.2, 0.4, 0.6]
    for epoch, acc in enumerate(accuracies, start=1):
        checkpointer.save_checkpoint(end_of_epoch=False, meta={INTRA_EPOCH_CKPT_FLAG: True})  # mid-epoch
        time.sleep(0.01)
        checkpointer.save_and_keep_best({"ACC": acc, "epoch": epoch}, max_key="ACC", num_best=3)
        folders = {p.name for p in tmp_path.glob("CKPT+*")}
        kept = {c.meta.get("epoch") for c in checkpointer.list_checkpoints()}
        best = sorted(range(1, epoch + 1), key=lambda e: accuracies[e - 1], reverse=True)[:3]
        assert kept == {*best, epoch}  # the 3 best by ACC and the latest, nothing else
        assert len(folders) == len(kept) <= 4  # no mid-epoch checkpoint left behind
    assert checkpointer.find_checkpoint().meta["epoch"] == len(accuracies)  # a resume starts from the latest


# -- evaluation cost ------------------------------------------------------------------


def test_validation_decodes_the_same_fixed_subset_every_epoch(whole_run):
    log = (whole_run / "log.txt").read_text()
    valid_rows = len((whole_run / "data" / "eval.csv").read_text().splitlines()) - 1
    assert valid_rows > 1
    assert f"Validation decodes 1 of the {valid_rows} utterances" in log
    decoded = re.findall(r"Validation: decoded (\d+) utterances \(IDs digest (\w+)\)", log)
    assert len(decoded) == 2 and decoded[0] == decoded[1] and decoded[0][0] == "1"  # the same one each epoch
    epochs = [line for line in (whole_run / "train_log.txt").read_text().splitlines() if line.startswith("epoch")]
    assert len(epochs) == 2 and all("valid EM" in line for line in epochs)
