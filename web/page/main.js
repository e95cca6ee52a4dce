// The page: opens a wgtrain Session (Rust compiled to wasm32), trains epoch by epoch with a
// live loss curve, and classifies what is drawn on the pad. `?epochs=N` trains N epochs on
// load (what the page test and the screenshot use).
import init, { Session } from './pkg/wgtrain_web.js';

const $ = (id) => document.getElementById(id);
const losses = [];
let session = null;
let epoch = 0;
let busy = false;

function status(text, done = false) {
  $('status').textContent = text;
  if (done) document.body.dataset.done = '1';
}

function fail(error) {
  $('error').textContent = String(error && error.message ? error.message : error);
  status('failed', true);
  document.body.dataset.failed = '1';
}

function drawLoss() {
  const canvas = $('loss');
  const g = canvas.getContext('2d');
  const { width: w, height: h } = canvas;
  g.clearRect(0, 0, w, h);
  if (losses.length < 2) return;
  const top = Math.max(...losses.slice(0, 20));
  const pad = 28;
  g.strokeStyle = '#dde1e8';
  g.fillStyle = '#5b6475';
  g.font = '12px system-ui';
  for (let i = 0; i <= 4; i++) {
    const y = pad / 2 + (h - pad) * i / 4;
    g.beginPath(); g.moveTo(pad, y); g.lineTo(w, y); g.stroke();
    g.fillText((top * (1 - i / 4)).toFixed(1), 0, y + 4);
  }
  g.strokeStyle = '#3c6df0';
  g.lineWidth = 1.5;
  g.beginPath();
  losses.forEach((l, i) => {
    const x = pad + (w - pad) * i / (losses.length - 1);
    const y = pad / 2 + (h - pad) * (1 - Math.min(l, top) / top);
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.stroke();
}

async function trainEpoch() {
  busy = true;
  $('train').disabled = true;
  status(`training epoch ${epoch + 1}`);
  const start = performance.now();
  const loss = await session.fitEpoch((step, l) => {
    losses.push(l);
    $('lossValue').textContent = l.toFixed(4);
    if (losses.length % 8 === 0) drawLoss();
  });
  const seconds = (performance.now() - start) / 1000;
  epoch += 1;
  drawLoss();
  $('epoch').textContent = String(epoch);
  $('lossValue').textContent = `${loss.toFixed(4)} (epoch mean)`;
  $('speed').textContent = (session.stepsPerEpoch / seconds).toFixed(1);
  status('evaluating');
  const accuracy = await session.testAccuracy();
  $('accuracy').textContent = `${(100 * accuracy).toFixed(2)}%`;
  $('accuracy').dataset.value = String(accuracy);
  $('download').disabled = false;
  $('train').disabled = false;
  busy = false;
  status('ready');
  await classify();
}

// The pad: thick white strokes on black, read back as MNIST made its digits: the ink's
// bounding box scaled into 20 × 20, then shifted so its centre of mass is the image's centre.
const pad = $('pad');
const ink = pad.getContext('2d');
ink.lineCap = 'round';
ink.lineJoin = 'round';
ink.lineWidth = 20;
ink.strokeStyle = '#fff';
let drawing = false;
let drawn = false;

function point(event) {
  const r = pad.getBoundingClientRect();
  return [(event.clientX - r.left) * pad.width / r.width, (event.clientY - r.top) * pad.height / r.height];
}
pad.addEventListener('pointerdown', (e) => { drawing = true; drawn = true; ink.beginPath(); ink.moveTo(...point(e)); });
pad.addEventListener('pointermove', (e) => { if (drawing) { ink.lineTo(...point(e)); ink.stroke(); } });
for (const end of ['pointerup', 'pointerleave']) {
  pad.addEventListener(end, () => { if (drawing) { drawing = false; classify(); } });
}
$('clear').addEventListener('click', () => { ink.fillStyle = '#000'; ink.fillRect(0, 0, 280, 280); drawn = false; showBars(null); });

function digitPixels() {
  const { data } = ink.getImageData(0, 0, 280, 280);
  let [x0, y0, x1, y1] = [280, 280, -1, -1];
  for (let y = 0; y < 280; y++) for (let x = 0; x < 280; x++) {
    if (data[4 * (y * 280 + x)] > 0) { x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y); }
  }
  if (x1 < 0) return null;
  const side = Math.max(x1 - x0, y1 - y0) + 1;
  const small = document.createElement('canvas');
  small.width = small.height = 28;
  const g = small.getContext('2d');
  g.fillStyle = '#000';
  g.fillRect(0, 0, 28, 28);
  const scale = 20 / side;
  g.drawImage(pad, x0, y0, x1 - x0 + 1, y1 - y0 + 1,
    4 + (20 - (x1 - x0 + 1) * scale) / 2, 4 + (20 - (y1 - y0 + 1) * scale) / 2,
    (x1 - x0 + 1) * scale, (y1 - y0 + 1) * scale);
  const px = g.getImageData(0, 0, 28, 28).data;
  const boxed = Float32Array.from({ length: 784 }, (_, i) => px[4 * i] / 255);
  let [mass, mx, my] = [0, 0, 0];
  boxed.forEach((v, i) => { mass += v; mx += v * (i % 28); my += v * Math.floor(i / 28); });
  const [dx, dy] = [Math.round(13.5 - mx / mass), Math.round(13.5 - my / mass)];
  return Float32Array.from({ length: 784 }, (_, i) => {
    const [x, y] = [i % 28 - dx, Math.floor(i / 28) - dy];
    return x >= 0 && x < 28 && y >= 0 && y < 28 ? boxed[y * 28 + x] : 0;
  });
}

function showBars(p) {
  const bars = $('bars');
  bars.replaceChildren();
  if (!p) return;
  const best = p.indexOf(Math.max(...p));
  p.forEach((v, digit) => {
    const bar = document.createElement('div');
    bar.className = digit === best ? 'bar top' : 'bar';
    bar.style.width = `${Math.max(1, 100 * v)}%`;
    const track = document.createElement('div');
    track.append(bar);
    const label = document.createElement('span');
    label.textContent = String(digit);
    const value = document.createElement('span');
    value.textContent = `${(100 * v).toFixed(1)}%`;
    bars.append(label, track, value);
  });
}

async function classify() {
  if (!session || busy || !drawn) return;
  const pixels = digitPixels();
  if (pixels) showBars(Array.from(await session.probabilities(pixels)));
}

$('train').addEventListener('click', () => trainEpoch().catch(fail));
$('download').addEventListener('click', async () => {
  try {
    const bytes = await session.checkpoint();
    const link = document.createElement('a');
    link.href = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
    link.download = `wgtrain-mnist-epoch${epoch}.safetensors`;
    link.click();
  } catch (error) { fail(error); }
});

// A seven, drawn as strokes, so a screenshot shows a prediction without a person's hand.
function drawSample() {
  ink.beginPath(); ink.moveTo(80, 70); ink.lineTo(200, 70); ink.lineTo(120, 220); ink.stroke();
  drawn = true;
}

// Browsers hide the adapter's name from wgpu's info unless asked; the page asks WebGPU itself.
async function adapterName() {
  const adapter = await navigator.gpu.requestAdapter();
  const info = adapter && adapter.info;
  const parts = info ? [info.vendor, info.architecture, info.description] : [];
  return parts.filter(Boolean).join(' ');
}

async function main() {
  ink.fillStyle = '#000';
  ink.fillRect(0, 0, 280, 280);
  if (!navigator.gpu) throw new Error('This browser has no WebGPU (navigator.gpu is missing).');
  await init();
  session = await Session.open(128, 1e-3, 64);
  window.wgtrainSession = session; // for the page test, which downloads the checkpoint
  $('adapter').textContent = `${(await adapterName()) || session.adapter} · WebGPU`;
  $('train').disabled = false;
  status('ready');
  const epochs = Number(new URLSearchParams(location.search).get('epochs') || 0);
  if (epochs > 0) {
    drawSample();
    for (let i = 0; i < epochs; i++) await trainEpoch();
  }
  status(epochs > 0 ? `trained ${epochs} epochs` : 'ready', true);
}

main().catch(fail);
