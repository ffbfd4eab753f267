// cleanplate browser app: talks to the same server's /v1 API. No framework, no CDN.
//
// Photos: one POST /v1/matte with output=rgba; the alpha view and the composite are drawn here
// from the returned RGBA PNG, so changing the background needs no second request.
// Videos: POST /v1/videos, poll the job for progress, then fetch the result.
"use strict";

const $ = (id) => document.getElementById(id);
const main = $("main");
const state = { subject: null, plate: null, bgImage: null, rgba: null, rgbaBlob: null, job: null, stream: null, urls: [] };

// ------------------------------------------------------------------ helpers
function setStatus(text, kind) {
  $("status").textContent = text;
  main.dataset.state = kind || main.dataset.state;
}

function headers() {
  const token = $("token").value.trim();
  return token ? { Authorization: "Bearer " + token } : {};
}

async function problemText(response) {
  // Every server error is RFC 9457 problem+json: show its one-line detail.
  try {
    const body = await response.json();
    return body.detail || body.title || response.statusText;
  } catch (e) {
    return response.status + " " + response.statusText;
  }
}

function isVideo(file) {
  return !!file && (file.type || "").startsWith("video/");
}

function objectUrl(blob) {
  const url = URL.createObjectURL(blob);
  state.urls.push(url);
  return url;
}

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ------------------------------------------------------------------ inputs
function setInput(slot, file) {
  state[slot] = file;
  $("name-" + slot).textContent = file ? (file.name || slot) + " (" + Math.round(file.size / 1024) + " KB)" : "or drop a file here";
  const thumb = $("thumb-" + slot);
  clear(thumb);
  if (!file) return;
  const el = document.createElement(isVideo(file) ? "video" : "img");
  el.src = objectUrl(file);
  if (el.tagName === "VIDEO") { el.muted = true; el.playsInline = true; }
  else el.alt = slot === "plate" ? "Clean plate preview" : "Subject preview";
  thumb.appendChild(el);
  $("video-format-row").hidden = !isVideo(state.subject);
}

for (const slot of ["subject", "plate"]) {
  $(slot).addEventListener("change", (ev) => setInput(slot, ev.target.files[0] || null));
  const drop = $("drop-" + slot);
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    const file = ev.dataTransfer.files[0];
    if (file) setInput(slot, file);
  });
}

$("bg-image-file").addEventListener("change", async (ev) => {
  const file = ev.target.files[0];
  state.bgImage = file ? await createImageBitmap(file) : null;
  state.bgImageFile = file || null;
  if (file) $("bg-image").checked = true;
  drawComposite();
});
for (const el of document.querySelectorAll('input[name="bg"], #bg-color-value')) {
  el.addEventListener("input", () => { if (el.id === "bg-color-value") $("bg-color").checked = true; drawComposite(); });
  el.addEventListener("change", drawComposite);
}

// ------------------------------------------------------------------ webcam
function grabFrame(name) {
  const video = $("cam");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return new Promise((resolve) => canvas.toBlob((blob) => resolve(new File([blob], name, { type: "image/png" })), "image/png"));
}

$("cam-start").addEventListener("click", async () => {
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (e) {
    setStatus("The camera is not available: " + e.message, "error");
    return;
  }
  $("cam").srcObject = state.stream;
  $("cam-plate").disabled = false;
  $("cam-stop").disabled = false;
  $("cam-start").disabled = true;
  setStatus("Camera on. Step out of the picture and capture the empty scene.", "idle");
  $("cam-plate").focus();
});
$("cam-plate").addEventListener("click", async () => {
  setInput("plate", await grabFrame("webcam_plate.png"));
  $("cam-subject").disabled = false;
  setStatus("Empty scene captured. Now step in and capture the shot with the subject.", "idle");
  $("cam-subject").focus();
});
$("cam-subject").addEventListener("click", async () => {
  setInput("subject", await grabFrame("webcam_subject.png"));
  setStatus("Both captured. Press Matte.", "idle");
  $("run").focus();
});
$("cam-stop").addEventListener("click", () => {
  if (state.stream) state.stream.getTracks().forEach((t) => t.stop());
  state.stream = null;
  $("cam").srcObject = null;
  for (const id of ["cam-plate", "cam-subject", "cam-stop"]) $(id).disabled = true;
  $("cam-start").disabled = false;
});

// ------------------------------------------------------------------ drawing
function bgMode() {
  return document.querySelector('input[name="bg"]:checked').value;
}

function paintBackground(ctx, w, h) {
  const mode = bgMode();
  if (mode === "image" && state.bgImage) {
    const img = state.bgImage; // cover: scale to cover, centre-crop (as the server does)
    const s = Math.max(w / img.width, h / img.height);
    const dw = img.width * s, dh = img.height * s;
    ctx.drawImage(img, (w - dw) / 2, (h - dh) / 2, dw, dh);
  } else if (mode === "checker") {
    const size = Math.max(8, Math.round(Math.max(w, h) / 64));
    for (let y = 0; y < h; y += size) {
      for (let x = 0; x < w; x += size) {
        ctx.fillStyle = ((x / size + y / size) % 2) ? "#c9c9c9" : "#ffffff";
        ctx.fillRect(x, y, size, size);
      }
    }
  } else {
    ctx.fillStyle = $("bg-color-value").value;
    ctx.fillRect(0, 0, w, h);
  }
}

function canvasIn(paneId, w, h, label) {
  const pane = $(paneId);
  clear(pane);
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  canvas.id = "view-" + paneId.replace("pane-", "");
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", label);
  pane.appendChild(canvas);
  return canvas;
}

function drawComposite() {
  if (state.rgba) {
    const { width: w, height: h } = state.rgba;
    const canvas = canvasIn("pane-comp", w, h, "Composite over the chosen background");
    const ctx = canvas.getContext("2d");
    paintBackground(ctx, w, h);
    ctx.drawImage(state.rgba, 0, 0);
    canvas.toBlob((blob) => {
      const link = $("dl-comp");
      link.href = objectUrl(blob);
      link.hidden = false;
    }, "image/png");
  }
  const video = document.querySelector("#pane-comp video");
  if (video) {
    video.classList.toggle("checker", bgMode() === "checker");
    video.style.backgroundColor = bgMode() === "color" ? $("bg-color-value").value : "";
  }
}

async function showPhotoResult(blob) {
  state.rgbaBlob = blob;
  state.rgba = await createImageBitmap(blob);
  const straight = await createImageBitmap(blob, { premultiplyAlpha: "none", colorSpaceConversion: "none" });
  const { width: w, height: h } = state.rgba;

  const original = canvasIn("pane-original", w, h, "Original photo");
  original.getContext("2d").drawImage(await createImageBitmap(state.subject), 0, 0, w, h);

  const scratch = document.createElement("canvas");
  scratch.width = w;
  scratch.height = h;
  const sctx = scratch.getContext("2d", { willReadFrequently: true });
  sctx.drawImage(straight, 0, 0);
  const pixels = sctx.getImageData(0, 0, w, h);
  const d = pixels.data;
  for (let i = 0; i < d.length; i += 4) {
    d[i] = d[i + 1] = d[i + 2] = d[i + 3];
    d[i + 3] = 255;
  }
  canvasIn("pane-alpha", w, h, "Alpha matte: white is subject").getContext("2d").putImageData(pixels, 0, 0);
  drawComposite();
  const link = $("dl-rgba");
  link.href = objectUrl(blob);
  link.hidden = false;
}

function showVideo(paneId, blob, label) {
  const pane = $(paneId);
  clear(pane);
  const video = document.createElement("video");
  video.src = objectUrl(blob);
  video.controls = true;
  video.loop = true;
  video.muted = true;
  video.playsInline = true;
  video.setAttribute("aria-label", label);
  pane.appendChild(video);
  return video;
}

// ------------------------------------------------------------------ running
function resetResult() {
  state.rgba = null;
  for (const id of ["pane-original", "pane-alpha", "pane-comp"]) clear($(id));
  for (const id of ["dl-rgba", "dl-comp", "dl-video"]) $(id).hidden = true;
  $("progress").hidden = true;
}

async function runPhoto() {
  const form = new FormData();
  form.append("image", state.subject, "image");
  form.append("plate", state.plate, "plate");
  form.append("output", "rgba");
  form.append("align", $("align").checked ? "true" : "false");
  setStatus("Matting the photo...", "working");
  const t0 = performance.now();
  const response = await fetch("/v1/matte", { method: "POST", body: form, headers: headers() });
  if (!response.ok) throw new Error(await problemText(response));
  await showPhotoResult(await response.blob());
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  const warning = response.headers.get("X-Cleanplate-Warning");
  setStatus("Done in " + seconds + " s (model " + (response.headers.get("X-Cleanplate-Model") || "?") + ")." + (warning ? " Warning: " + warning : ""), "done");
}

function videoChoice() {
  const format = $("video-format").value;
  return format === "mp4" ? { output: "comp", format: "mp4" } : { output: "rgba", format };
}

async function runVideo() {
  const { output, format } = videoChoice();
  const form = new FormData();
  form.append("video", state.subject, "video");
  form.append("plate", state.plate, "plate");
  form.append("output", output);
  form.append("format", format);
  form.append("align", $("align").checked ? "true" : "false");
  if (output === "comp") {
    if (bgMode() === "image" && state.bgImageFile) form.append("background_image", state.bgImageFile, "background");
    else form.append("background", $("bg-color-value").value);
  }
  setStatus("Uploading the video...", "working");
  const response = await fetch("/v1/videos", { method: "POST", body: form, headers: headers() });
  if (!response.ok) throw new Error(await problemText(response));
  let job = await response.json();
  state.job = job.id;
  $("cancel").hidden = false;
  const progress = $("progress");
  progress.hidden = false;
  progress.removeAttribute("value");
  showVideo("pane-original", state.subject, "Original video");
  $("fig-alpha").hidden = true;
  while (job.state === "queued" || job.state === "running") {
    await sleep(500);
    if (state.job !== job.id) return; // cancelled
    const poll = await fetch(job.status_url, { headers: headers() });
    if (!poll.ok) throw new Error(await problemText(poll));
    job = await poll.json();
    if (job.progress !== null && job.progress !== undefined) progress.value = job.progress;
    const total = job.frames_total ? " of " + job.frames_total : "";
    const fps = job.fps ? ", " + job.fps.toFixed(1) + " fps" : "";
    const eta = job.eta_seconds !== null && job.eta_seconds !== undefined ? ", about " + Math.ceil(job.eta_seconds) + " s left" : "";
    setStatus(job.state === "queued" ? "Waiting for the server..." : "Frame " + job.frames_done + total + fps + eta, "working");
  }
  $("cancel").hidden = true;
  state.job = null;
  if (job.state !== "done") throw new Error("The job " + job.state + (job.detail ? ": " + job.detail : ""));
  progress.value = 1;
  const result = await fetch(job.result_url, { headers: headers() });
  if (!result.ok) throw new Error(await problemText(result));
  const blob = await result.blob();
  showVideo("pane-comp", blob, "Result video");
  drawComposite();
  const link = $("dl-video");
  link.href = objectUrl(blob);
  link.download = "cleanplate_" + output + "." + format;
  link.textContent = "Download " + format.toUpperCase();
  link.hidden = false;
  setStatus("Done: " + job.frames_done + " frames" + (job.fps ? " at " + job.fps.toFixed(1) + " fps" : "") + "." + (job.detail ? " " + job.detail : ""), "done");
}

$("run").addEventListener("click", async () => {
  if (!state.subject || !state.plate) {
    setStatus("Pick both: the shot with the subject and the clean plate.", "error");
    (state.subject ? $("plate") : $("subject")).focus();
    return;
  }
  state.urls.forEach((u) => URL.revokeObjectURL(u));
  state.urls = [];
  setInput("subject", state.subject);
  setInput("plate", state.plate);
  resetResult();
  $("fig-alpha").hidden = false;
  $("run").disabled = true;
  try {
    if (isVideo(state.subject)) await runVideo();
    else await runPhoto();
  } catch (e) {
    setStatus(e.message, "error");
    $("progress").hidden = true;
    $("cancel").hidden = true;
  } finally {
    $("run").disabled = false;
  }
});

$("cancel").addEventListener("click", async () => {
  const id = state.job;
  if (!id) return;
  state.job = null;
  $("cancel").hidden = true;
  await fetch("/v1/videos/" + id, { method: "DELETE", headers: headers() });
  setStatus("Cancelled; the server removed the job's files.", "idle");
  $("progress").hidden = true;
  $("run").disabled = false;
});

// ------------------------------------------------------------------ start
(async () => {
  $("video-format-row").hidden = true;
  $("token").value = sessionStorage.getItem("cleanplate-token") || "";
  $("token").addEventListener("change", () => sessionStorage.setItem("cleanplate-token", $("token").value));
  try {
    const health = await (await fetch("/healthz")).json();
    $("token-box").hidden = !health.auth;
    if (health.auth && !$("token").value) setStatus("This server needs its token: enter it at the top.", "idle");
  } catch (e) {
    setStatus("The server does not answer.", "error");
  }
  main.dataset.ready = "true";
})();
