"""The page of ``stop-slu serve`` in a real browser: headless Chromium (Debian's
``chromium`` and ``chromium-driver``) driven by Selenium, the microphone faked
from a test wav. Recording, uploading and picking an example clip each show the
parse ``stop-slu parse`` gives; a screenshot of the result is kept.

Without Chromium these tests skip and say why; with ``CI=true`` in the
environment (``.ci/run``) a missing browser fails them instead."""

import base64
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import run_cli, start_server
from scipy.signal import correlate

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
RATE = 16000
WAIT = 120  # seconds for an answer on a loaded machine


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).is_file() or not shutil.which(path):
            return f"{path} missing: apt-get install -y chromium chromium-driver (Debian package {package})"
    return None


@pytest.fixture(scope="module")
def mic_wav(mini_release, tmp_path_factory):
    """The fake microphone's file: a test utterance between half seconds of silence, 16-bit PCM (the
    browser starts recording some milliseconds into the file)."""
    source = sorted(Path(mini_release, "test_0").rglob("*.wav"))[0]
    samples, rate = sf.read(source, dtype="int16")
    path = tmp_path_factory.mktemp("mic") / "mic.wav"
    silence = np.zeros(rate // 2, "int16")
    sf.write(path, np.concatenate([silence, samples, silence]), rate, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def browser(mic_wav):
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser tests must run in CI: {missing}")
        pytest.skip(missing)
    os.environ["SE_AVOID_STATS"] = "true"  # no usage statistics sent by Selenium
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI containers run as root
        "--disable-dev-shm-usage",
        "--window-size=1000,1100",
        "--use-fake-ui-for-media-stream",  # the microphone is allowed without a prompt
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic_wav}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_script_timeout(WAIT)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server(trained):
    running = start_server(trained[0])
    yield running
    running.stop()


def _open(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server.url + "/")
    WebDriverWait(browser, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#examples button"))


def _shown(browser, what):
    """What the page shows once it has parsed ``what``: {parse, intent, confidence, tree words}."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def answered(driver):
        error = driver.find_element(By.ID, "error")
        assert not error.is_displayed(), f"the page shows an error: {error.text}"
        return driver.find_element(By.ID, "sent").text == f"Parsed {what}."

    WebDriverWait(browser, WAIT).until(answered)
    text = lambda id_: browser.find_element(By.ID, id_).text
    return {
        "parse": text("bracket"),
        "intent": text("intent"),
        "confidence": text("confidence"),
        "tree": [node.text for node in browser.find_elements(By.CSS_SELECTOR, "#tree .node")],
        "elapsed": text("elapsed"),
        "warning": browser.find_element(By.ID, "low-confidence").is_displayed(),
    }


def _sent_clip(browser, folder, name) -> Path:
    """The audio the page sent (its 'Save this clip' link), written to ``folder/name``."""
    data = browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch(document.getElementById("save").href).then((r) => r.arrayBuffer()).then((b) => {
          let s = ""; for (const x of new Uint8Array(b)) s += String.fromCharCode(x); done(btoa(s)); });"""
    )
    path = folder / name
    path.write_bytes(base64.b64decode(data))
    return path


def _parse_cli(model, *wavs):
    """What ``stop-slu parse MODEL WAV`` prints, one call per file: files parsed in one call share a
    zero-padded batch, which can change the parse of the shorter ones."""
    return [json.loads(run_cli("parse", model, wav).stdout) for wav in wavs]


def _assert_same(shown, parsed):
    assert shown["parse"] == parsed["parse"]
    assert shown["intent"] == (parsed["intent"] or "(none)")
    assert shown["confidence"] == f"{parsed['confidence']:.2f}"
    labels = [label[1:] for label in parsed["parse"].split() if label.startswith("[")]
    assert shown["tree"] == [
        ("intent " if kind == "IN" else "slot ") + name for kind, name in (label.split(":", 1) for label in labels)
    ]
    assert shown["elapsed"].startswith("answered in ") and shown["elapsed"].endswith(" ms")
    assert shown["warning"] == (parsed["confidence"] < -0.85)


def test_recording_from_the_microphone_shows_the_parse(browser, server, trained, mic_wav, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, server)
    record = browser.find_element(By.ID, "record")
    record.click()
    WebDriverWait(browser, WAIT).until(lambda d: record.get_attribute("aria-pressed") == "true")
    time.sleep(sf.info(mic_wav).duration)
    record.click()
    shown = _shown(browser, "your recording")
    recording = _sent_clip(browser, tmp_path, "recording.wav")
    info = sf.info(recording)
    assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "PCM_16")  # made in the browser
    # what the browser recorded is the fake microphone's utterance (resampled twice by the browser, so not
    # bit-exact: the page's parse is compared with parse on the WAV the browser made and sent)
    heard, _ = sf.read(recording, dtype="float64")
    played, _ = sf.read(mic_wav, dtype="float64")
    utterance = played[RATE // 2 : len(played) - RATE // 2]
    assert len(heard) >= len(utterance), f"recorded {len(heard)} samples, fewer than the utterance's {len(utterance)}"
    match = correlate(heard, utterance, mode="valid")  # at each shift: normalised by both signals' energy
    energy = np.convolve(heard**2, np.ones(len(utterance)), "valid")
    similarity = match / np.sqrt(np.sum(utterance**2) * np.maximum(energy, 1e-3 * energy.max()))
    assert similarity.max() > 0.9, f"the recording does not hold the utterance (similarity {similarity.max():.2f})"
    _assert_same(shown, _parse_cli(trained[0], recording)[0])


def test_upload_and_example_clip_show_the_parse(browser, server, trained, mini_release, mic_wav, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _open(browser, server)
    browser.find_element(By.ID, "upload").send_keys(str(mic_wav))
    shown_upload = _shown(browser, f'"{mic_wav.name}"')
    # the first example clip, reached with the keyboard alone
    first = browser.find_element(By.CSS_SELECTOR, "#examples button")
    browser.find_element(By.TAG_NAME, "h1").click()  # focus at the top of the page
    for _ in range(10):
        if browser.switch_to.active_element == first:
            break
        ActionChains(browser).send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element == first, "the example clips cannot be reached with Tab"
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    shown_example = _shown(browser, f'example clip "{first.text}"')
    example = _sent_clip(browser, tmp_path, "example.wav")
    reference = browser.find_element(By.ID, "reference-parse").text  # the test set's parse, beside the answer
    assert reference.startswith("[IN:") and reference in first.get_attribute("title")
    screenshots = Path(os.environ.get("STOP_SLU_ARTIFACTS", tmp_path))
    screenshots.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(screenshots / "serve_page.png"))
    parsed_upload, parsed_example = _parse_cli(trained[0], mic_wav, example)
    _assert_same(shown_upload, parsed_upload)
    _assert_same(shown_example, parsed_example)
    test_clips = {path.read_bytes() for path in Path(mini_release).glob("test_*/*/*.wav")}
    assert example.read_bytes() in test_clips  # the model's own test clips


def test_errors_are_shown_in_words(browser, server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, server)
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is text, not audio")
    browser.find_element(By.ID, "upload").send_keys(str(not_audio))
    error = browser.find_element(By.ID, "error")
    WebDriverWait(browser, WAIT).until(lambda d: error.is_displayed())
    assert error.text == 'The server refused "notes.wav": not an audio file; send a wav (or flac, ogg) of one utterance'
