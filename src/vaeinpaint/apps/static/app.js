// The page of `vaeinpaint serve`: paint a hole over a photo, send both to the API, show the
// VAE's completions beside the classical fills. No library, nothing from another host.
"use strict";

const $ = (selector) => document.querySelector(selector);
const $$ = (selector) => document.querySelectorAll(selector);
const MASK_COLOUR = "#ff2020";
const UNDO_DEPTH = 20;

const state = { file: null, name: "photo", undo: [], drawing: null, results: [], shown: 0, urls: [], prior: "standard" };
const photoCanvas = $("#photo");
const maskCanvas = $("#mask");
const mask = maskCanvas.getContext("2d");

function say(text) {
  $("#message").textContent = text || "";
  $("#message").hidden = !text;
}

async function errorOf(response) {
  try {
    const body = await response.json();
    return body.detail || `${response.status} ${response.statusText}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

async function loadChoices() {
  const [models, health] = await Promise.all([fetch("/api/models"), fetch("/api/health")]);
  if (!models.ok) return say(await errorOf(models));
  const info = await models.json();
  for (const model of info.models) $("#model").add(new Option(model.label, model.id));
  for (const strategy of info.strategies) $("#strategy").add(new Option(strategy, strategy, false, strategy === info.default_strategy));
  $("#samples").max = info.max_samples;
  const status = health.ok ? await health.json() : { detail: await errorOf(health) };
  const prior = status.prior === "learned" ? ", learned prior" : "";
  $("#health").textContent = health.ok ? `model ready (trained at ${status.size} px${prior})` : status.detail;
  $("#health").classList.toggle("muted", health.ok);
}

// --- the photo ----------------------------------------------------------------------

async function openPhoto(file) {
  say("");
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    return say(`${file.name}: this browser cannot show it as an image (try a PNG or JPEG)`);
  }
  state.file = file;
  state.name = file.name.replace(/\.[^.]*$/, "") || "photo";
  for (const canvas of [photoCanvas, maskCanvas]) {
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
  }
  photoCanvas.getContext("2d").drawImage(bitmap, 0, 0);
  bitmap.close();
  state.undo = [];
  clearMask();
  $("#drop").classList.remove("empty");
  $("#results").hidden = true;
  updateButtons();
}

$("#file").addEventListener("change", (event) => event.target.files[0] && openPhoto(event.target.files[0]));
for (const type of ["dragenter", "dragover"]) {
  document.addEventListener(type, (event) => { event.preventDefault(); $("#drop").classList.add("over"); });
}
document.addEventListener("dragleave", () => $("#drop").classList.remove("over"));
document.addEventListener("drop", (event) => {
  event.preventDefault();
  $("#drop").classList.remove("over");
  if (event.dataTransfer.files[0]) openPhoto(event.dataTransfer.files[0]);
});

// --- painting the hole --------------------------------------------------------------

const tool = () => document.querySelector("input[name=tool]:checked").value;
const scale = () => maskCanvas.width / maskCanvas.getBoundingClientRect().width;  // image px per screen px

function at(event) {
  const rect = maskCanvas.getBoundingClientRect();
  return { x: (event.clientX - rect.left) * scale(), y: (event.clientY - rect.top) * scale() };
}

function remember() {
  state.undo.push(mask.getImageData(0, 0, maskCanvas.width, maskCanvas.height));
  if (state.undo.length > UNDO_DEPTH) state.undo.shift();
}

function clearMask() {
  mask.clearRect(0, 0, maskCanvas.width, maskCanvas.height);
}

function hasHole() {
  const alpha = mask.getImageData(0, 0, maskCanvas.width, maskCanvas.height).data;
  for (let i = 3; i < alpha.length; i += 4) if (alpha[i] >= 128) return true;
  return false;
}

function updateButtons() {
  $("#restore").disabled = !state.file || !hasHole();
  $("#undo").disabled = state.undo.length === 0;
}

function line(from, to) {
  mask.globalCompositeOperation = tool() === "eraser" ? "destination-out" : "source-over";
  mask.strokeStyle = MASK_COLOUR;
  mask.lineWidth = $("#size").value * scale();
  mask.lineCap = mask.lineJoin = "round";
  mask.beginPath();
  mask.moveTo(from.x, from.y);
  mask.lineTo(to.x, to.y);
  mask.stroke();
}

maskCanvas.addEventListener("pointerdown", (event) => {
  if (!state.file) return;
  maskCanvas.setPointerCapture(event.pointerId);
  remember();
  const start = at(event);
  state.drawing = { start, last: start, before: state.undo[state.undo.length - 1] };
  if (tool() !== "box") line(start, start);
});

maskCanvas.addEventListener("pointermove", (event) => {
  if (!state.drawing) return;
  const point = at(event);
  if (tool() === "box") {
    const { start, before } = state.drawing;
    mask.putImageData(before, 0, 0);
    mask.globalCompositeOperation = "source-over";
    mask.fillStyle = MASK_COLOUR;
    mask.fillRect(Math.min(start.x, point.x), Math.min(start.y, point.y), Math.abs(point.x - start.x), Math.abs(point.y - start.y));
  } else {
    line(state.drawing.last, point);
  }
  state.drawing.last = point;
});

for (const type of ["pointerup", "pointercancel"]) {
  maskCanvas.addEventListener(type, () => {
    state.drawing = null;
    updateButtons();
  });
}

$("#undo").addEventListener("click", () => {
  if (state.undo.length) mask.putImageData(state.undo.pop(), 0, 0);
  updateButtons();
});
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === "z") $("#undo").click();
});
$("#clear").addEventListener("click", () => {
  remember();
  clearMask();
  updateButtons();
});
$("#size").addEventListener("input", () => { $("#size-value").textContent = $("#size").value; });

// The mask the API takes: white where the painted layer is at least half opaque, else black.
function maskBlob() {
  const painted = mask.getImageData(0, 0, maskCanvas.width, maskCanvas.height);
  const out = new ImageData(maskCanvas.width, maskCanvas.height);
  for (let i = 0; i < painted.data.length; i += 4) {
    const value = painted.data[i + 3] >= 128 ? 255 : 0;
    out.data[i] = out.data[i + 1] = out.data[i + 2] = value;
    out.data[i + 3] = 255;
  }
  const canvas = document.createElement("canvas");
  canvas.width = out.width;
  canvas.height = out.height;
  canvas.getContext("2d").putImageData(out, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

// --- restoring ----------------------------------------------------------------------

// The API answers K > 1 completions as a stored (uncompressed) zip of PNGs.
function pngsOfZip(buffer) {
  const view = new DataView(buffer);
  const files = [];
  let offset = 0;
  while (offset + 30 <= buffer.byteLength && view.getUint32(offset, true) === 0x04034b50) {
    const size = view.getUint32(offset + 18, true);
    const start = offset + 30 + view.getUint16(offset + 26, true) + view.getUint16(offset + 28, true);
    files.push(new Blob([buffer.slice(start, start + size)], { type: "image/png" }));
    offset = start + size;
  }
  return files;
}

async function post(path, fields) {
  const form = new FormData();
  for (const [key, value] of Object.entries(fields)) form.append(key, value);
  const response = await fetch(path, { method: "POST", body: form });
  if (!response.ok) throw new Error(await errorOf(response));
  return response;
}

function showOriginal() {
  const canvas = $("#result-original canvas");
  canvas.width = photoCanvas.width;
  canvas.height = photoCanvas.height;
  const context = canvas.getContext("2d");
  context.drawImage(photoCanvas, 0, 0);
  context.globalAlpha = 0.6;
  context.drawImage(maskCanvas, 0, 0);
}

// All K completions side by side; the chosen one (the first, until another is clicked) is
// what Download saves.
function show(blobs) {
  for (const url of state.urls) URL.revokeObjectURL(url);
  state.urls = blobs.map((blob) => URL.createObjectURL(blob));
  const grid = $("#completions");
  grid.replaceChildren(...state.urls.map((url, index) => {
    const img = document.createElement("img");
    img.src = url;
    img.alt = state.urls.length > 1 ? `completion ${index + 1}` : "the photo restored by the VAE";
    img.setAttribute("role", "option");
    img.tabIndex = 0;
    img.addEventListener("click", () => choose(index));
    img.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") choose(index); });
    return img;
  }));
  grid.classList.toggle("several", state.urls.length > 1);
  $("#result-vae").classList.toggle("several", state.urls.length > 1);  // the whole row: K side by side
  choose(0);
}

function choose(index) {
  const count = state.urls.length;
  state.shown = index;
  $$("#completions img").forEach((img, i) => img.setAttribute("aria-selected", String(i === index)));
  $("#download").href = state.urls[index];
  $("#download").download = count > 1 ? `${state.name}-inpainted-${index + 1}.png` : `${state.name}-inpainted.png`;
  $("#sample-label").textContent = count > 1
    ? `${count} completions${state.prior === "learned" ? " from the learned prior" : ""}; downloading ${index + 1}`
    : "most likely completion";
}

async function baseline(method) {
  const img = $(`#result-${method} img`);
  try {
    const response = await post("/api/baseline", { image: state.file, mask: await maskBlob(), method });
    img.src = URL.createObjectURL(await response.blob());
    img.alt = `${method} fill`;
  } catch (error) {
    img.removeAttribute("src");
    img.alt = `${method}: ${error.message}`;
  }
}

$("#restore").addEventListener("click", async () => {
  say("");
  $("#restore").disabled = true;
  $("#busy").hidden = false;
  document.body.dataset.state = "working";
  try {
    const samples = Number($("#samples").value) || 1;
    const response = await post("/api/inpaint", {
      image: state.file, mask: await maskBlob(), samples, seed: Number($("#seed").value) || 0,
      strategy: $("#strategy").value, model: $("#model").value,
    });
    state.prior = response.headers.get("X-Vaeinpaint-Prior") || "standard";
    const blobs = samples > 1 ? pngsOfZip(await response.arrayBuffer()) : [await response.blob()];
    showOriginal();
    show(blobs);
    $("#results").hidden = false;
    await Promise.all([baseline("biharmonic"), baseline("telea")]);
    document.body.dataset.state = "done";
  } catch (error) {
    say(error.message);
    document.body.dataset.state = "error";
  } finally {
    $("#busy").hidden = true;
    updateButtons();
  }
});

loadChoices().catch((error) => say(`cannot reach the server: ${error.message}`));
