"""Every front-end gives an utterance the same features whether it is alone or
batched with a louder, longer one (fbank + normaliser, Whisper's log-mel, the
SSL encoders), and the feature normaliser keeps fp32 statistics under bf16
autocast. Tiny randomly initialised Whisper, WavLM and HuBERT: nothing is downloaded."""

import pytest
import torch
from conftest import OFFLINE, REPO, build_ssl_config
from speechbrain.processing.features import InputNormalization

from stop_slu.frontend import compute_features_of, normalize_features

SAMPLE_RATE = 16000


@pytest.fixture
def offline(monkeypatch):
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)


def quiet_and_loud(seconds=(1.0, 2.5)):
    """A quiet short utterance alone, and batched (padded with zeros) after a
    loud longer one: (alone (1, n), its lengths, batch (2, m), its lengths)."""
    generator = torch.Generator().manual_seed(0)
    quiet = 0.05 * torch.randn(int(seconds[0] * SAMPLE_RATE), generator=generator)
    loud = 0.9 * torch.randn(int(seconds[1] * SAMPLE_RATE), generator=generator)
    batch = torch.zeros(2, loud.numel())
    batch[0, : quiet.numel()] = quiet
    batch[1] = loud
    return quiet[None], torch.ones(1), batch, torch.tensor([quiet.numel() / loud.numel(), 1.0])


def assert_same_frames(alone, batched):
    """The alone utterance's frames (time on dim -2 or -1) equal the batched row's first ones within 1e-5."""
    frames = alone.shape[1]
    difference = (alone[0] - batched[0, :frames]).abs().max().item()
    assert difference < 1e-5, f"features differ by {difference} alone and in a batch"


def test_fbank_features_do_not_depend_on_batch_mates(tmp_path):
    from hyperpyyaml import load_hyperpyyaml

    with open(REPO / "hparams" / "mini.yaml", encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, {"data_folder": str(tmp_path), "output_folder": str(tmp_path / "out")})
    modules, normalize = hparams["modules"], hparams["normalize"]

    def features(wavs, wav_lens):
        return normalize_features(
            normalize, compute_features_of(modules, hparams["compute_features"], wavs, wav_lens), wav_lens
        )

    alone, alone_lens, batch, batch_lens = quiet_and_loud()
    normalize.train()
    features(batch, batch_lens)  # global statistics
    normalize.eval()
    with torch.no_grad():
        assert_same_frames(features(alone, alone_lens), features(batch, batch_lens))


def test_whisper_log_mel_is_floored_per_utterance(tiny_whisper, tmp_path, offline):
    from stop_slu.whisper import WhisperSLU

    whisper = WhisperSLU(str(tiny_whisper), tmp_path / "whisper")
    alone, _, batch, _ = quiet_and_loud()
    with torch.no_grad():
        single = whisper.log_mel_spectrogram(whisper.pad_or_trim(alone))
        batched = whisper.log_mel_spectrogram(whisper.pad_or_trim(batch))
    assert single.shape == (1, 80, 3000) and batched.shape == (2, 80, 3000)
    difference = (single[0] - batched[0]).abs().max().item()
    assert difference < 1e-5, f"log-mel differs by {difference} alone and in a batch"
    unbatched = whisper.log_mel_spectrogram(whisper.pad_or_trim(alone[0]))
    assert torch.allclose(unbatched, single[0])


@pytest.mark.parametrize("name", ["wavlm", "hubert"])
def test_ssl_features_do_not_depend_on_batch_mates(name, tiny_ssl, tmp_path, offline):
    hparams = build_ssl_config(name, tiny_ssl[name], tmp_path)
    front = hparams["compute_features"].eval()
    alone, alone_lens, batch, batch_lens = quiet_and_loud()
    with torch.no_grad():
        single = compute_features_of(hparams["modules"], front, alone, alone_lens)
        batched = compute_features_of(hparams["modules"], front, batch, batch_lens)
    assert_same_frames(single, batched)


@pytest.fixture
def bf16_ssl_features(tiny_ssl, tmp_path, offline):
    """(the SSL config's hparams, two batches of the bf16 features its front-end gives under autocast, lengths)."""
    hparams = build_ssl_config("wavlm", tiny_ssl["wavlm"], tmp_path)
    generator = torch.Generator().manual_seed(1)
    lens = torch.tensor([0.7, 1.0])
    pool = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for scale in (1.0, 3.0):
            wavs = scale * torch.randn(2, 3200, generator=generator)
            pool.append(compute_features_of(hparams["modules"], hparams["compute_features"], wavs, lens))
    assert all(feats.dtype == torch.bfloat16 for feats in pool)
    return hparams, pool, lens


def test_the_ssl_normaliser_runs_in_fp32_under_bf16_autocast(bf16_ssl_features):
    hparams, pool, lens = bf16_ssl_features
    normalize = hparams["normalize"]  # per-utterance mean subtraction
    for feats in pool:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            out = normalize_features(normalize, feats, lens)
        assert out.dtype == torch.float32
        off = (out - normalize(feats.float(), lens)).abs().max().item()
        assert off < 1e-5, f"normalised features off by {off} from fp32 arithmetic"


def test_running_statistics_stay_fp32_under_bf16_autocast(bf16_ssl_features):
    """2,000 batches of bf16 features into a global normaliser: its running
    statistics are those fp32 arithmetic gives on the same features (kept in
    bf16, the mean stops moving once the count is large)."""
    _, pool, lens = bf16_ssl_features
    normalize, reference = InputNormalization(norm_type="global"), InputNormalization(norm_type="global")
    with torch.no_grad():
        for step in range(2000):
            feats = pool[0] if step < 1000 else pool[1] + 9.0  # the second half moves the mean
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = normalize_features(normalize, feats, lens)
            reference(feats.float(), lens)
    assert normalize.count == reference.count
    off = (normalize.glob_mean - reference.glob_mean).abs().max().item()
    assert off < 1e-4, f"running mean off by {off} from fp32 arithmetic on the same features"
    assert normalize.glob_mean.dtype == normalize.glob_std.dtype == torch.float32
    assert torch.allclose(normalize.glob_std, reference.glob_std, atol=1e-4)
    assert out.dtype == torch.float32
