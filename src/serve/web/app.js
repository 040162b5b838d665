// skelex web page: upload, then show the radiograph with its error map.
// Vanilla JS; talks only to this server's HTTP API.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const CMAPS = {
    inferno: [[0, 0, 0, 4], [.13, 31, 12, 72], [.25, 85, 15, 109], [.38, 136, 34, 106], [.5, 186, 54, 85],
      [.63, 227, 89, 51], [.75, 249, 140, 10], [.88, 249, 201, 50], [1, 252, 255, 164]],
    viridis: [[0, 68, 1, 84], [.25, 59, 82, 139], [.5, 33, 145, 140], [.75, 94, 201, 98], [1, 253, 231, 37]],
    magma: [[0, 0, 0, 4], [.25, 81, 18, 124], [.5, 183, 55, 121], [.75, 252, 137, 97], [1, 252, 253, 191]],
    hot: [[0, 0, 0, 0], [.375, 255, 0, 0], [.75, 255, 255, 0], [1, 255, 255, 255]],
    jet: [[0, 0, 0, 128], [.125, 0, 0, 255], [.375, 0, 255, 255], [.625, 255, 255, 0], [.875, 255, 0, 0], [1, 128, 0, 0]],
  };
  function lut(name) {
    const pts = CMAPS[name] || CMAPS.inferno, out = new Uint8Array(256 * 3);
    for (let i = 0; i < 256; i++) {
      const t = i / 255;
      let k = 1;
      while (k < pts.length - 1 && pts[k][0] < t) k++;
      const a = pts[k - 1], b = pts[k], f = (t - a[0]) / (b[0] - a[0] || 1);
      for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.round(a[c + 1] + (b[c + 1] - a[c + 1]) * Math.min(1, Math.max(0, f)));
    }
    return out;
  }
  const fmt = (v) => (v === null || v === undefined || !isFinite(v)) ? '-' : (Math.abs(v) >= 100 ? v.toFixed(1) : Number(v).toPrecision(4));

  const state = { result: null, gray: null, map: null, mapSize: 0, scale: 1, tx: 0, ty: 0, views: [] };

  // ---- health ----
  fetch('/healthz').then((r) => r.json()).then((h) => {
    $('health').textContent = 'model ' + h.model + ' \u00b7 skelex ' + h.version + (h.classifier ? ' \u00b7 classifier ' + h.classifier : '');
    if (h.max_passes) $('passes').max = h.max_passes;
  }).catch(() => { $('health').textContent = 'server unreachable'; });

  // ---- upload ----
  const drop = $('drop');
  ['dragenter', 'dragover'].forEach((ev) => drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add('over'); }));
  ['dragleave', 'drop'].forEach((ev) => drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove('over'); }));
  drop.addEventListener('drop', (e) => { if (e.dataTransfer.files.length) analyze(e.dataTransfer.files[0]); });
  document.body.addEventListener('dragover', (e) => e.preventDefault());
  document.body.addEventListener('drop', (e) => { e.preventDefault(); if (e.dataTransfer.files.length) analyze(e.dataTransfer.files[0]); });
  $('file').addEventListener('change', (e) => { if (e.target.files.length) analyze(e.target.files[0]); });

  function showError(msg) {
    $('error').textContent = msg;
    $('error').classList.remove('hidden');
  }

  function analyze(file) {
    $('error').classList.add('hidden');
    $('progress').classList.remove('hidden');
    $('bar').value = 0;
    $('progress-text').textContent = 'uploading ' + file.name + '\u2026';
    const q = new URLSearchParams({ passes: $('passes').value, masking: $('masking').value, seed: $('seed').value });
    const fd = new FormData();
    fd.append('file', file, 'upload');
    const xhr = new XMLHttpRequest();
    const t0 = performance.now();
    let timer = null;
    xhr.open('POST', '/api/analyze?' + q.toString());
    xhr.responseType = 'json';
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) $('bar').value = 100 * e.loaded / e.total; };
    xhr.upload.onload = () => {
      $('bar').removeAttribute('value');   // indeterminate while the model works
      timer = setInterval(() => { $('progress-text').textContent = 'computing the error map\u2026 ' + ((performance.now() - t0) / 1000).toFixed(0) + ' s'; }, 250);
    };
    xhr.onerror = () => { clearInterval(timer); $('progress').classList.add('hidden'); showError('the server could not be reached'); };
    xhr.onload = () => {
      clearInterval(timer);
      $('progress').classList.add('hidden');
      const r = xhr.response;
      if (xhr.status !== 200 || !r) { showError((r && r.error) || ('request failed: HTTP ' + xhr.status)); return; }
      show(r).catch((e) => showError('could not display the result: ' + e.message));
    };
    xhr.send(fd);
  }

  // ---- the result ----
  function loadImage(url) {
    return new Promise((res, rej) => { const im = new Image(); im.onload = () => res(im); im.onerror = () => rej(new Error('image did not load')); im.src = url; });
  }
  function parseNpy(buf) {
    const u8 = new Uint8Array(buf);
    if (u8[0] !== 0x93 || String.fromCharCode(...u8.slice(1, 6)) !== 'NUMPY') throw new Error('not a .npy');
    const major = u8[6], dv = new DataView(buf);
    const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true), off = major === 1 ? 10 : 12;
    const header = new TextDecoder().decode(u8.slice(off, off + hlen));
    if (!/'descr':\s*'<f4'/.test(header)) throw new Error('expected float32');
    const shape = /'shape':\s*\((\d+),\s*(\d+)\)/.exec(header);
    return { size: +shape[1], data: new Float32Array(buf.slice(off + hlen)) };
  }

  async function show(r) {
    state.result = r;
    const [im, npy] = await Promise.all([loadImage(r.image), fetch(r.map).then((x) => { if (!x.ok) throw new Error('map HTTP ' + x.status); return x.arrayBuffer(); })]);
    const m = parseNpy(npy);
    state.map = m.data;
    state.mapSize = m.size;
    const c = document.createElement('canvas');
    c.width = r.width; c.height = r.height;
    const cx = c.getContext('2d');
    cx.drawImage(im, 0, 0);
    state.gray = cx.getImageData(0, 0, r.width, r.height);
    buildViews();
    renderGray();
    renderOverlay();
    renderSummary(r);
    fit();
    $('controls').classList.remove('hidden');
    $('summary').classList.remove('hidden');
  }

  function buildViews() {
    const box = $('views');
    box.textContent = '';
    state.views = [];
    const side = $('side').checked;
    const specs = side ? [{ caption: 'radiograph', overlay: false }, { caption: 'error map', overlay: true }] : [{ caption: '', overlay: true }];
    specs.forEach((sp, i) => {
      const v = document.createElement('div');
      v.className = 'view';
      if (sp.caption) { const cap = document.createElement('div'); cap.className = 'caption'; cap.textContent = sp.caption; v.appendChild(cap); }
      const st = document.createElement('div');
      st.className = 'stage';
      const base = document.createElement('canvas');
      base.className = 'base';
      base.width = state.result.width; base.height = state.result.height;
      st.appendChild(base);
      let ov = null;
      if (sp.overlay) {
        ov = document.createElement('canvas');
        ov.className = 'overlay';
        if (i === specs.length - 1) ov.id = 'overlay';
        st.appendChild(ov);
      }
      const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
      svg.setAttribute('width', state.result.width); svg.setAttribute('height', state.result.height);
      svg.setAttribute('viewBox', '0 0 ' + state.result.width + ' ' + state.result.height);
      st.appendChild(svg);
      v.appendChild(st);
      box.appendChild(v);
      state.views.push({ el: v, stage: st, base, ov, svg });
      attachPanZoom(v);
    });
    drawMarks();
  }

  function renderGray() {
    const w = +$('window').value, l = +$('level').value, src = state.gray;
    const out = new ImageData(src.width, src.height), s = src.data, d = out.data;
    const lo = l - w / 2, k = 255 / w, tab = new Uint8ClampedArray(256);
    for (let i = 0; i < 256; i++) tab[i] = (i - lo) * k;
    for (let i = 0; i < s.length; i += 4) { const g = tab[s[i]]; d[i] = g; d[i + 1] = g; d[i + 2] = g; d[i + 3] = 255; }
    state.views.forEach((v) => v.base.getContext('2d').putImageData(out, 0, 0));
  }

  function renderOverlay() {
    const r = state.result, n = state.mapSize, top = r.summary.scale_max > 0 ? r.summary.scale_max : (r.summary.max || 1);
    const tab = lut($('colormap').value);
    const small = document.createElement('canvas');
    small.width = n; small.height = n;
    const sx = small.getContext('2d'), img = sx.createImageData(n, n), d = img.data;
    for (let i = 0; i < n * n; i++) {
      const v = state.map[i];
      if (!(v >= 0)) { d[i * 4 + 3] = 0; continue; }   // NaN: never masked
      const t = Math.min(1, v / top), j = Math.round(t * 255) * 3;
      d[i * 4] = tab[j]; d[i * 4 + 1] = tab[j + 1]; d[i * 4 + 2] = tab[j + 2];
      d[i * 4 + 3] = Math.round(255 * t);
    }
    sx.putImageData(img, 0, 0);
    state.views.forEach((v) => {
      if (!v.ov) return;
      v.ov.width = r.width; v.ov.height = r.height;
      const cx = v.ov.getContext('2d');
      cx.imageSmoothingEnabled = true;
      cx.imageSmoothingQuality = 'high';
      cx.drawImage(small, 0, 0, r.width, r.height);
      v.ov.dataset.ready = '1';
    });
    applyOpacity();
    const cb = $('colorbar'), cbx = cb.getContext('2d'), bar = cbx.createImageData(256, 1);
    for (let i = 0; i < 256; i++) { bar.data[i * 4] = tab[i * 3]; bar.data[i * 4 + 1] = tab[i * 3 + 1]; bar.data[i * 4 + 2] = tab[i * 3 + 2]; bar.data[i * 4 + 3] = 255; }
    for (let y = 0; y < cb.height; y++) cbx.putImageData(bar, 0, y);
    $('cb-min').textContent = '0';
    $('cb-mid').textContent = fmt(top / 2);
    $('cb-max').textContent = '\u2265 ' + fmt(top);
  }

  function applyOpacity() {
    const a = +$('opacity').value / 100, on = $('show-overlay').checked;
    state.views.forEach((v) => { if (v.ov) { v.ov.style.opacity = String(a); v.ov.style.display = on ? '' : 'none'; } });
  }

  function drawMarks() {
    const r = state.result, NS = 'http://www.w3.org/2000/svg';
    state.views.forEach((v) => {
      v.svg.textContent = '';
      const rad = Math.max(6, Math.min(r.width, r.height) / 60);
      const c = document.createElementNS(NS, 'circle');
      c.setAttribute('cx', r.summary.peak_x); c.setAttribute('cy', r.summary.peak_y); c.setAttribute('r', rad);
      c.setAttribute('fill', 'none'); c.setAttribute('stroke', '#3cf'); c.setAttribute('stroke-width', rad / 3);
      c.setAttribute('class', 'peak');
      v.svg.appendChild(c);
      (r.regions || []).forEach((g, i) => {
        const b = g.box, rect = document.createElementNS(NS, 'rect'), whole = g.source === 'whole';
        rect.setAttribute('x', b[0]); rect.setAttribute('y', b[1]); rect.setAttribute('width', b[2] - b[0]); rect.setAttribute('height', b[3] - b[1]);
        rect.setAttribute('fill', 'none'); rect.setAttribute('stroke', whole ? '#8cf' : '#7f7'); rect.setAttribute('stroke-width', rad / (whole ? 5 : 3));
        if (whole) rect.setAttribute('stroke-dasharray', rad + ' ' + rad);
        rect.setAttribute('class', 'region');
        rect.setAttribute('data-region', String(i));
        const t = document.createElementNS(NS, 'title');
        t.textContent = 'region ' + i + ' (' + g.source + '): ' + (g.heads || []).map((h) => h.name + ' ' + (100 * h.probability).toFixed(0) + '%').join(', ');
        rect.appendChild(t);
        v.svg.appendChild(rect);
        // the label: the region's index and its top output
        const fs = Math.max(10, Math.min(r.width, r.height) / 30), lab = document.createElementNS(NS, 'text');
        lab.setAttribute('x', b[0] + rad / 2);
        lab.setAttribute('y', whole ? b[1] + fs * 1.1 : (b[1] - fs * 0.3 > fs ? b[1] - fs * 0.3 : b[1] + fs * 1.1));
        lab.setAttribute('font-size', fs); lab.setAttribute('fill', whole ? '#8cf' : '#7f7');
        lab.setAttribute('stroke', '#000'); lab.setAttribute('stroke-width', fs / 12); lab.setAttribute('paint-order', 'stroke');
        lab.setAttribute('class', 'region-label');
        lab.textContent = i + ': ' + (g.top ? g.top.name + ' ' + (100 * g.top.probability).toFixed(0) + '%' : '');
        v.svg.appendChild(lab);
      });
    });
  }

  const pct = (p) => (100 * p).toFixed(1) + '%';
  const SEG = ['#f9a03c', '#3cb4f9', '#9be15d', '#e35d9b', '#b58cf9', '#f9e03c', '#5de3c8', '#f96d3c'];
  // one group of heads: softmax as one stacked bar summing to 1 (with a
  // legend), sigmoid outputs as separate bars; each with its maximum over regions
  function renderGroup(g) {
    const d = document.createElement('div'); d.className = 'group ' + g.kind;
    const h = document.createElement('div'); h.className = 'group-name'; h.textContent = g.name + (g.kind === 'softmax' ? ' (one of)' : '');
    d.appendChild(h);
    const maxText = (o) => ' · max ' + pct(o.max) + ' in region ' + o.region;
    if (g.kind === 'softmax') {
      const st = document.createElement('div'); st.className = 'stack';
      g.outputs.forEach((o, k) => {
        const seg = document.createElement('div'); seg.className = 'seg';
        seg.style.width = Math.max(0, Math.min(100, 100 * o.probability)) + '%';
        seg.style.background = SEG[k % SEG.length];
        seg.title = o.name + ' ' + pct(o.probability);
        st.appendChild(seg);
      });
      d.appendChild(st);
      g.outputs.forEach((o, k) => {
        const l = document.createElement('div'); l.className = 'legend';
        const sw = document.createElement('span'); sw.className = 'swatch'; sw.style.background = SEG[k % SEG.length];
        l.appendChild(sw);
        l.appendChild(document.createTextNode(o.name + ': ' + pct(o.probability) + maxText(o)));
        d.appendChild(l);
      });
    } else {
      g.outputs.forEach((o) => {
        const b = document.createElement('div'); b.className = 'head';
        const n = document.createElement('div'); n.className = 'name'; n.textContent = o.name + ': ' + pct(o.probability) + maxText(o);
        const tr = document.createElement('div'); tr.className = 'track';
        const f = document.createElement('div'); f.className = 'fill'; f.style.width = Math.max(0, Math.min(100, 100 * o.probability)) + '%';
        tr.appendChild(f); b.appendChild(n); b.appendChild(tr); d.appendChild(b);
      });
    }
    return d;
  }

  function renderSummary(r) {
    const s = r.summary, rows = [
      ['Image', r.width + ' \u00d7 ' + r.height + ' px'], ['Mean error', fmt(s.mean)], ['Max error', fmt(s.max)],
      ['Peak (x, y)', fmt(s.peak_x) + ', ' + fmt(s.peak_y)], ['Passes', s.passes], ['Masking', s.masking + ', ratio ' + fmt(s.mask_ratio)],
      ['Model', r.model.name + ' (skelex ' + r.model.version + ')'], ['Time', fmt(r.seconds) + ' s']];
    const t = $('figures');
    t.textContent = '';
    rows.forEach(([k, v]) => { const tr = t.insertRow(), th = document.createElement('th'); th.textContent = k; tr.appendChild(th); tr.insertCell().textContent = v; });
    const hb = $('heads');
    hb.textContent = '';
    if (r.heads && r.heads.length) {
      const note = document.createElement('div'); note.className = 'region-heads';
      note.textContent = 'Whole image; the maximum over the error-map regions and where it comes from (region numbers as on the image).';
      hb.appendChild(note);
      r.heads.forEach((g) => hb.appendChild(renderGroup(g)));
      if (r.decision) {
        const d = document.createElement('div'); d.className = 'decision';
        d.textContent = 'SKELEX rule: ' + (r.decision.tumour ? (r.decision.malignant ? 'malignant tumour' : 'tumour, not malignant') : 'no tumour') +
          ' (max P(tumour) ' + pct(r.decision.p_tumour) + ' in region ' + r.decision.region_tumour + ')';
        hb.appendChild(d);
      }
      const h2 = document.createElement('h2'); h2.textContent = 'Regions'; hb.appendChild(h2);
      const ol = document.createElement('ol'); ol.className = 'regions'; ol.start = 0;
      (r.regions || []).forEach((g) => {
        const li = document.createElement('li');
        li.textContent = g.source + ' [' + g.box.map((x) => Math.round(x)).join(', ') + ']' + (g.top ? ': ' + g.top.name + ' ' + pct(g.top.probability) : '');
        ol.appendChild(li);
      });
      hb.appendChild(ol);
      $('heads-box').classList.remove('hidden');
    } else $('heads-box').classList.add('hidden');
    $('dl-overlay').href = r.overlay;
    $('dl-npy').href = r.map;
    $('dl-report').href = r.report;
  }

  // ---- zoom & pan (shared by the views) ----
  function applyTransform() {
    state.views.forEach((v) => { v.stage.style.transform = 'translate(' + state.tx + 'px,' + state.ty + 'px) scale(' + state.scale + ')'; });
  }
  function fit() {
    if (!state.views.length) return;
    const el = state.views[0].el, r = state.result;
    state.scale = Math.min(el.clientWidth / r.width, el.clientHeight / r.height) || 1;
    state.tx = (el.clientWidth - r.width * state.scale) / 2;
    state.ty = (el.clientHeight - r.height * state.scale) / 2;
    applyTransform();
  }
  function zoomAt(f, px, py) {
    const ns = Math.min(50, Math.max(0.02, state.scale * f));
    state.tx = px - (px - state.tx) * ns / state.scale;
    state.ty = py - (py - state.ty) * ns / state.scale;
    state.scale = ns;
    applyTransform();
  }
  function attachPanZoom(v) {
    v.addEventListener('wheel', (e) => {
      e.preventDefault();
      const b = v.getBoundingClientRect();
      zoomAt(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX - b.left, e.clientY - b.top);
    }, { passive: false });
    let drag = null;
    v.addEventListener('pointerdown', (e) => { drag = { x: e.clientX, y: e.clientY, tx: state.tx, ty: state.ty }; v.setPointerCapture(e.pointerId); v.classList.add('dragging'); });
    v.addEventListener('pointermove', (e) => { if (!drag) return; state.tx = drag.tx + e.clientX - drag.x; state.ty = drag.ty + e.clientY - drag.y; applyTransform(); });
    const end = () => { drag = null; v.classList.remove('dragging'); };
    v.addEventListener('pointerup', end);
    v.addEventListener('pointercancel', end);
  }
  const centre = () => { const el = state.views[0].el; return [el.clientWidth / 2, el.clientHeight / 2]; };
  $('zoom-in').addEventListener('click', () => { if (state.views.length) zoomAt(1.25, ...centre()); });
  $('zoom-out').addEventListener('click', () => { if (state.views.length) zoomAt(0.8, ...centre()); });
  $('zoom-fit').addEventListener('click', fit);
  window.addEventListener('resize', () => { if (state.result) fit(); });

  // ---- controls ----
  $('opacity').addEventListener('input', applyOpacity);
  $('show-overlay').addEventListener('change', applyOpacity);
  $('colormap').addEventListener('change', () => { if (state.result) renderOverlay(); });
  $('window').addEventListener('input', () => { if (state.result) renderGray(); });
  $('level').addEventListener('input', () => { if (state.result) renderGray(); });
  $('side').addEventListener('change', () => {
    if (!state.result) return;
    buildViews(); renderGray(); renderOverlay(); fit();
  });
})();
