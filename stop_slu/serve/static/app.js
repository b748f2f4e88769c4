// The page of stop-slu serve: record (Web Audio -> 16 kHz mono WAV), upload or pick a clip,
// send it to POST /v1/parse, show the parse as a tree, its bracket string, confidence and time.
"use strict";

const RATE = 16000;
const NO_ANSWER = -1e15; // a parse holding a token the CTC scorer ruled out (docs/walkthrough.md)
const $ = (id) => document.getElementById(id);
let lowConfidence = -0.85;
let recording = null; // {stream, context, node, chunks} while the microphone is on

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function setBusy(busy) {
  for (const el of document.querySelectorAll("#examples button, #upload")) el.disabled = busy;
  $("record").disabled = busy && !recording;
}

async function loadModel() {
  try {
    const response = await fetch("/v1/model");
    if (!response.ok) throw new Error(`status ${response.status}`);
    const model = await response.json();
    $("model-name").textContent = model.name;
    lowConfidence = model.low_confidence;
    const box = $("examples");
    box.textContent = "";
    if (!model.examples.length) box.textContent = "none: this model's folder has no test clips";
    for (const example of model.examples) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = example.text;
      button.dataset.index = example.index;
      if (example.reference) button.title = `reference parse: ${example.reference}`;
      button.addEventListener("click", () => sendExample(example));
      box.appendChild(button);
    }
  } catch (error) {
    showError(`Could not read the model's details from the server (${error.message}); is stop-slu serve running?`);
  }
}

async function sendExample(example) {
  clearError();
  try {
    const response = await fetch(`/v1/examples/${example.index}`);
    if (!response.ok) throw new Error(`status ${response.status}`);
    await send(await response.blob(), `example clip "${example.text}"`, "audio/wav", "example.wav", example.reference);
  } catch (error) {
    showError(`Could not fetch the example clip (${error.message}).`);
  }
}

// --- recording: Web Audio at 16 kHz, samples copied by an AudioWorklet, WAV made here ---

async function startRecording() {
  clearError();
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.AudioWorkletNode) {
    showError(
      "This browser offers no microphone to this page: browsers allow it only on localhost or HTTPS pages " +
        "(see docs/serving.md). Upload a file instead.",
    );
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  } catch (error) {
    const why =
      error.name === "NotAllowedError"
        ? "the microphone was not allowed; allow it in the browser's site settings"
        : error.name === "NotFoundError"
          ? "no microphone was found"
          : `the microphone could not start (${error.name}: ${error.message})`;
    showError(`Cannot record: ${why}. You can upload a file instead.`);
    return;
  }
  let context, node;
  const chunks = [];
  try {
    context = new AudioContext({ sampleRate: RATE }); // the browser resamples the microphone to 16 kHz
    await context.audioWorklet.addModule("/static/recorder-worklet.js");
    const source = context.createMediaStreamSource(stream);
    node = new AudioWorkletNode(context, "recorder");
    const silent = context.createGain();
    silent.gain.value = 0;
    node.port.onmessage = (event) => chunks.push(event.data);
    source.connect(node).connect(silent).connect(context.destination);
  } catch (error) {
    for (const track of stream.getTracks()) track.stop();
    if (context) context.close();
    showError(`Cannot record: this browser could not capture audio at 16 kHz (${error.message}). Upload a file instead.`);
    return;
  }
  recording = { stream, context, node, chunks, started: performance.now() };
  $("record").textContent = "Stop";
  $("record").setAttribute("aria-pressed", "true");
  $("record-status").textContent = "Recording... press Stop when done.";
  setBusy(true);
}

async function stopRecording() {
  const { stream, context, node, chunks } = recording;
  recording = null;
  node.port.onmessage = null;
  for (const track of stream.getTracks()) track.stop();
  const rate = context.sampleRate;
  await context.close();
  $("record").textContent = "Record";
  $("record").setAttribute("aria-pressed", "false");
  const samples = concat(chunks);
  $("record-status").textContent = `Recorded ${(samples.length / rate).toFixed(1)} s.`;
  setBusy(false);
  if (!samples.length) {
    showError("Nothing was recorded: the microphone sent no sound. Check that it is connected and not muted.");
    return;
  }
  await send(wavBlob(samples, rate), "your recording", "audio/wav", "recording.wav");
}

function concat(chunks) {
  const out = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

// A 16-bit PCM mono RIFF/WAVE file of float samples in [-1, 1].
function wavBlob(samples, rate) {
  const buffer = new ArrayBuffer(44 + samples.length * 2);
  const view = new DataView(buffer);
  const text = (at, s) => [...s].forEach((ch, i) => view.setUint8(at + i, ch.charCodeAt(0)));
  text(0, "RIFF");
  view.setUint32(4, 36 + samples.length * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  text(36, "data");
  view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([buffer], { type: "audio/wav" });
}

// --- sending and showing the answer ---

async function send(blob, what, type, filename = "clip.wav", reference = null) {
  clearError();
  setBusy(true);
  $("sent").textContent = `Parsing ${what}...`;
  const player = $("playback");
  if (player.src) URL.revokeObjectURL(player.src);
  player.src = URL.createObjectURL(blob);
  player.hidden = false;
  $("save").href = player.src; // what was sent, e.g. the WAV made from the microphone
  $("save").download = filename;
  $("save").hidden = false;
  const started = performance.now();
  try {
    let response;
    try {
      response = await fetch("/v1/parse", { method: "POST", headers: { "Content-Type": type }, body: blob });
    } catch (error) {
      throw new Error("The server did not answer; is stop-slu serve still running?");
    }
    let answer;
    try {
      answer = await response.json();
    } catch (error) {
      throw new Error(`The server answered with status ${response.status} and no readable message.`);
    }
    if (!response.ok) throw new Error(`The server refused ${what}: ${answer.error || response.statusText}`);
    const elapsed = performance.now() - started;
    $("sent").textContent = `Parsed ${what}.`;
    showResult(answer, elapsed, reference);
  } catch (error) {
    $("sent").textContent = "";
    $("result").hidden = true;
    showError(error.message);
  } finally {
    setBusy(false);
  }
}

function showResult(answer, elapsed, reference) {
  $("bracket").textContent = answer.parse;
  $("intent").textContent = answer.intent || "(none)";
  $("confidence").textContent = answer.confidence.toFixed(2);
  $("elapsed").textContent = `answered in ${Math.round(elapsed)} ms`;
  const warning = $("low-confidence");
  if (answer.confidence <= NO_ANSWER) {
    warning.textContent = "No answer: the model could not make sense of this audio. Try again, closer to the microphone.";
    warning.hidden = false;
  } else if (answer.confidence < lowConfidence) {
    warning.textContent =
      `Low confidence (below ${lowConfidence}): the model was unsure, so this parse is likely wrong. ` +
      "Speak clearly and close to the microphone, or try another clip.";
    warning.hidden = false;
  } else {
    warning.hidden = true;
  }
  $("tree").replaceChildren(drawTree(answer.parse));
  $("reference").hidden = !reference;
  if (reference) {
    $("reference-parse").textContent = reference;
    $("verdict").textContent = reference === answer.parse ? "(the same)" : "(different)";
  }
  $("copied").textContent = "";
  $("result").hidden = false;
}

// "[IN:A w [SL:B x [IN:C y ] ] ]" -> nested lists: intents and slots as labelled nodes, words under them.
function drawTree(parse) {
  const root = document.createElement("ul");
  const stack = [root];
  let words = null;
  for (const token of parse.split(/\s+/).filter(Boolean)) {
    const list = stack[stack.length - 1];
    if (token.startsWith("[")) {
      const [kind, ...label] = token.slice(1).split(":");
      const item = document.createElement("li");
      const node = document.createElement("span");
      node.className = `node ${kind === "IN" ? "intent" : "slot"}`;
      node.textContent = `${kind === "IN" ? "intent" : "slot"} ${label.join(":")}`;
      item.appendChild(node);
      const children = document.createElement("ul");
      item.appendChild(children);
      list.appendChild(item);
      stack.push(children);
      words = null;
    } else if (token === "]") {
      if (stack.length > 1) stack.pop();
      words = null;
    } else {
      if (!words) {
        const item = document.createElement("li");
        words = document.createElement("span");
        words.className = "words";
        item.appendChild(words);
        list.appendChild(item);
      }
      words.textContent = words.textContent ? `${words.textContent} ${token}` : token;
    }
  }
  for (const list of root.querySelectorAll("ul")) if (!list.children.length) list.remove();
  return root;
}

async function copyBracket() {
  const text = $("bracket").textContent;
  try {
    await navigator.clipboard.writeText(text);
    $("copied").textContent = "Copied.";
  } catch (error) {
    const range = document.createRange();
    range.selectNodeContents($("bracket"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    $("copied").textContent = "Selected: press Ctrl+C (or Cmd+C) to copy.";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("record").addEventListener("click", () => (recording ? stopRecording() : startRecording()));
  $("upload").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) send(file, `"${file.name}"`, file.type || "application/octet-stream", file.name);
    event.target.value = "";
  });
  $("copy").addEventListener("click", copyBracket);
  loadModel();
});
