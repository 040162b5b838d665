// page.test.mjs: the skelex web page in a real browser (Debian's chromium,
// driven by playwright-core): start `skelex serve` on a tiny MAE and a tiny
// classifier, open the page, upload a radiograph, wait for the overlay, move
// the opacity slider, check the overlay and the classifier's bars, take a
// screenshot. Prints one line: "browser test: PASS|SKIP|FAIL ...".
// Run from the repository root: node tests/browser/page.test.mjs
// Env: SKELEX_BROWSER_IMAGE (a radiograph to upload; default: a synthetic
// one), SKELEX_BROWSER_SHOT (the screenshot path; default build/browser/page.png;
// the side-by-side view goes next to it as *-side.png), SKELEX_BROWSER_MODEL
// (an MAE directory to serve instead of the tiny one made here).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';

const here = path.dirname(new URL(import.meta.url).pathname);
const root = path.resolve(here, '../..');
const CHROMIUM = '/usr/bin/chromium';
const skip = (why) => { console.log('browser test: SKIP (' + why + ')'); process.exit(0); };
const fail = (why) => { console.log('browser test: FAIL (' + why + ')'); process.exit(1); };

if (!fs.existsSync(CHROMIUM)) skip(CHROMIUM + ' not found; scripts/deps.sh installs chromium');
let chromium;
try {
  chromium = createRequire(path.join(here, 'package.json'))('playwright-core').chromium;
} catch (e) {
  skip('playwright-core not installed in tests/browser/node_modules; run scripts/deps.sh (npm ci)');
}
const skelex = path.join(root, 'skelex');
if (!fs.existsSync(skelex)) fail('./skelex is not built (make skelex)');

// ---- a PNG writer (8-bit grey), for the synthetic images ----
const CRC = new Int32Array(256).map((_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c; });
const crc32 = (b) => { let c = -1; for (const x of b) c = CRC[(c ^ x) & 255] ^ (c >>> 8); return (c ^ -1) >>> 0; };
function chunk(type, data) {
  const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type), data]);
  const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
function png(w, h, f) {
  const raw = Buffer.alloc((w + 1) * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) raw[y * (w + 1) + 1 + x] = f(x, y);
  const ihdr = Buffer.alloc(13); ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 0;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}
const radiograph = (w, h, k, big) => png(w, h, (x, y) => {
  const dx = x - w / 2 - (k % 5), dy = y - h / 2 + (k % 3), r = big ? w / 3 : w / 7;
  return Math.min(255, 30 + (dx * dx + dy * dy < r * r ? 170 : 0) + ((x * 7 + y * 3 + k) % 13));
});

// ---- tiny models: an MAE (skelex init) and a classifier (skelex finetune, 1 epoch) ----
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'skelex-browser-'));
let server = null, browser = null;
function cleanup() {
  if (server) server.kill('SIGTERM');
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);
const run = (args) => execFileSync(skelex, args, { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OMP_NUM_THREADS: '1' } });

async function main() {
  const cfg = path.join(tmp, 'cfg.json');
  fs.writeFileSync(cfg, JSON.stringify({ image_size: 32, patch_size: 8, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64, decoder_hidden_size: 16, decoder_num_hidden_layers: 1, decoder_num_attention_heads: 2, decoder_intermediate_size: 32 }));
  const mae = process.env.SKELEX_BROWSER_MODEL || path.join(tmp, 'mae');
  if (!process.env.SKELEX_BROWSER_MODEL) run(['init', '--config', cfg, '--out', mae, '--seed', '1']);
  // five classes, then groups in its config.json: "abnormal" (sigmoid) and
  // "tumour" (softmax over the other four), the SKELEX layout in miniature
  const classes = ['abnormal', 'malignant', 'intermediate', 'benign', 'no_tumour'];
  classes.forEach((c, ci) => {
    fs.mkdirSync(path.join(tmp, 'data', c), { recursive: true });
    for (let k = 0; k < 8; k++) fs.writeFileSync(path.join(tmp, 'data', c, 'img' + k + '.png'), radiograph(40, 40, k + ci, ci % 2 === 1));
  });
  fs.writeFileSync(path.join(tmp, 'task.json'), JSON.stringify({ name: 'toy', type: 'multiclass', image_root: 'data', class_folders: classes }));
  run(['finetune', '--task', 'task.json', '--config', cfg, '--out', 'ft', '--folds', '2', '--only-folds', '0', '--epochs', '1', '--warmup-epochs', '0', '--batch', '4', '--micro-batch', '4']);
  const cls = path.join(tmp, 'ft', 'fold0', 'best');
  if (!fs.existsSync(path.join(cls, 'config.json'))) fail('finetune left no classifier in ' + cls);
  const ccfg = JSON.parse(fs.readFileSync(path.join(cls, 'config.json'), 'utf8'));
  ccfg.groups = [{ name: 'abnormal', kind: 'sigmoid', outputs: ['abnormal'] }, { name: 'tumour', kind: 'softmax', outputs: classes.slice(1) }];
  fs.writeFileSync(path.join(cls, 'config.json'), JSON.stringify(ccfg, null, 2));

  // ---- the server, on a free port ----
  server = spawn(skelex, ['serve', '--model', mae, '--classifier', cls, '--port', '0', '--workers', '1'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OMP_NUM_THREADS: '1' } });
  let log = '';
  server.stderr.on('data', (d) => { log += d; });
  const url = await new Promise((res, rej) => {
    let out = '';
    const t = setTimeout(() => rej(new Error('serve printed no URL in 30 s: ' + log)), 30000);
    server.stdout.on('data', (d) => { out += d; const m = /open (http:\/\/[^ \n]+)/.exec(out); if (m) { clearTimeout(t); res(m[1]); } });
    server.on('exit', (code) => rej(new Error('serve exited with ' + code + ': ' + log)));
  });

  const img = process.env.SKELEX_BROWSER_IMAGE || path.join(tmp, 'upload.png');
  if (!process.env.SKELEX_BROWSER_IMAGE) fs.writeFileSync(img, radiograph(300, 240, 1, true));
  const shot = process.env.SKELEX_BROWSER_SHOT || path.join(root, 'build', 'browser', 'page.png');
  fs.mkdirSync(path.dirname(shot), { recursive: true });

  // a fresh profile (--user-data-dir) in the scratch folder
  browser = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = browser.pages()[0] || await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById('health').textContent.includes('classifier'), null, { timeout: 15000 });
  await page.setInputFiles('#file', img);
  await page.waitForSelector('#overlay[data-ready="1"]', { timeout: 60000 });
  // the overlay has coloured pixels where the map is high
  const painted = await page.$eval('#overlay', (c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n / (d.length / 4); });
  if (!(painted > 0.01)) fail('the overlay is empty (' + painted + ')');
  await page.$eval('#opacity', (el) => { el.value = '25'; el.dispatchEvent(new Event('input', { bubbles: true })); });
  const op = await page.$eval('#overlay', (c) => getComputedStyle(c).opacity);
  if (Math.abs(parseFloat(op) - 0.25) > 1e-6) fail('opacity slider did not set the overlay opacity: ' + op);
  // the heads, grouped: a softmax group as one stacked bar summing to 1, the sigmoid output as its own bar
  const groups = await page.$$eval('#heads .group', (gs) => gs.map((g) => ({
    name: g.querySelector('.group-name').textContent, softmax: g.classList.contains('softmax'),
    segs: [...g.querySelectorAll('.stack .seg')].map((e) => parseFloat(e.style.width)),
    bars: g.querySelectorAll('.head .fill').length, legend: g.querySelectorAll('.legend').length })));
  if (groups.length !== 2) fail('expected 2 head groups, got ' + groups.length);
  const [ga, gt] = groups;
  if (ga.softmax || ga.bars !== 1 || ga.segs.length) fail('the sigmoid group is not one bar: ' + JSON.stringify(ga));
  if (!gt.softmax || gt.segs.length !== 4 || gt.legend !== 4) fail('the softmax group is not one 4-part bar: ' + JSON.stringify(gt));
  const total = gt.segs.reduce((a, b) => a + b, 0);
  if (Math.abs(total - 100) > 0.01) fail('the softmax bar does not sum to 100%: ' + total);
  const heads = groups.map((g) => g.name);
  // window/level repaints the grey image; zoom changes the shared transform
  const mean = () => page.$eval('#views canvas.base', (c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let t = 0; for (let i = 0; i < d.length; i += 4) t += d[i]; return t / (d.length / 4); });
  const m0 = await mean();
  await page.$eval('#level', (el) => { el.value = '60'; el.dispatchEvent(new Event('input', { bubbles: true })); });
  const m1 = await mean();
  if (!(m1 > m0 + 5)) fail('level did not brighten the image: ' + m0 + ' -> ' + m1);
  await page.$eval('#level', (el) => { el.value = '128'; el.dispatchEvent(new Event('input', { bubbles: true })); });
  const t0 = await page.$eval('#views .stage', (e) => e.style.transform);
  await page.click('#zoom-in');
  const t1 = await page.$eval('#views .stage', (e) => e.style.transform);
  if (t0 === t1) fail('zoom did not change the view');
  await page.click('#zoom-fit');
  // the error-map regions: one labelled box each (the whole image last), inside the image, listed under the heads
  const result = await page.evaluate(async () => {
    const id = document.getElementById('dl-report').getAttribute('href').split('/')[3];
    return (await fetch('/api/result/' + id + '/result.json')).json();
  });
  const regions = result.regions || [];
  if (regions.length < 2) fail('expected error-map regions and the whole image, got ' + regions.length);
  if (regions[regions.length - 1].source !== 'whole' || regions.slice(0, -1).some((g) => g.source !== 'errormap')) fail('region sources: ' + regions.map((g) => g.source));
  for (const g of regions) {
    const [x0, y0, x1, y1] = g.box;
    if (!(x0 >= 0 && y0 >= 0 && x1 <= result.width && y1 <= result.height && x1 > x0 && y1 > y0)) fail('region outside the image: ' + g.box);
  }
  const boxes = await page.$$eval('#views .view:first-child svg rect.region', (rs) => rs.map((r) => [+r.getAttribute('x'), +r.getAttribute('y'), +r.getAttribute('width'), +r.getAttribute('height')]));
  if (boxes.length !== regions.length) fail(boxes.length + ' region boxes drawn for ' + regions.length + ' regions');
  boxes.forEach((b, i) => { const g = regions[i].box; if (Math.abs(b[0] - g[0]) > 1e-3 || Math.abs(b[2] - (g[2] - g[0])) > 1e-3) fail('box ' + i + ' drawn at ' + b + ', region ' + g); });
  const labels = await page.$$eval('#views .view:first-child svg text.region-label', (ts) => ts.map((t) => t.textContent));
  if (labels.length !== regions.length || !labels.every((t, i) => t.startsWith(i + ': ' + regions[i].top.name))) fail('region labels: ' + labels.join(' | '));
  const listed = await page.$$eval('#heads ol.regions li', (ls) => ls.length);
  if (listed !== regions.length) fail(listed + ' regions listed for ' + regions.length);
  const size = await page.$eval('#overlay', (c) => [c.width, c.height]);
  for (const id of ['dl-overlay', 'dl-npy', 'dl-report']) {
    const href = await page.$eval('#' + id, (a) => a.getAttribute('href'));
    const r = await page.evaluate(async (h) => (await fetch(h)).status, href);
    if (r !== 200) fail(id + ' ' + href + ' -> ' + r);
  }
  await page.$eval('#opacity', (el) => { el.value = '60'; el.dispatchEvent(new Event('input', { bubbles: true })); });
  await page.screenshot({ path: shot });
  // side by side: two views, the overlay in the second
  await page.check('#side');
  await page.waitForFunction(() => document.querySelectorAll('#views .view').length === 2 && document.querySelector('#overlay[data-ready="1"]'), null, { timeout: 10000 });
  const sideShot = shot.replace(/\.png$/, '') + '-side.png';
  await page.screenshot({ path: sideShot });
  if (errors.length) fail('page errors: ' + errors.join('; '));
  console.log('browser test: PASS (overlay ' + size.join('x') + ', ' + (100 * painted).toFixed(0) + '% painted, head groups: ' + heads.join(' | ') + ', ' + regions.length + ' regions (' + labels.join(' | ') + '); side by side ok; screenshots ' + path.relative(root, shot) + ', ' + path.relative(root, sideShot) + ')');
}

main().then(async () => { if (browser) await browser.close(); process.exit(0); })
  .catch(async (e) => { if (browser) await browser.close().catch(() => {}); fail(e.message.split('\n')[0]); });
