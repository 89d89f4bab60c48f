// The editing page: load a photo, select with clicks and boxes (SAM), erase (LaMa) or replace
// from a prompt (SD), compare, chain edits, download. Talks only to its own server (/api/...).
(() => {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const el = {
    backend: $('backend'), open: $('open'), open2: $('open-2'), file: $('file'), helpOpen: $('help-open'),
    help: $('help'), helpClose: $('help-close'), stage: $('stage'), dropzone: $('dropzone'), limits: $('limits'),
    view: $('view'), base: $('base'), after: $('after'), overlay: $('overlay'), marks: $('marks'),
    divider: $('divider'), status: $('status'), progress: $('progress'), progressBar: $('progress-bar'),
    statusText: $('status-text'), error: $('error'), errorTitle: $('error-title'), errorMessage: $('error-message'),
    errorDetail: $('error-detail'), errorClose: $('error-close'), imageInfo: $('image-info'), undo: $('undo'),
    redo: $('redo'), reset: $('reset'), grow: $('grow'), growOut: $('grow-out'), showMask: $('show-mask'),
    score: $('score'), downloadMask: $('download-mask'), erase: $('erase'), prompt: $('prompt'), negative: $('negative'), seed: $('seed'),
    seedRandom: $('seed-random'), seedUsed: $('seed-used'), steps: $('steps'), guidance: $('guidance'),
    strength: $('strength'), strengthOut: $('strength-out'), replace: $('replace'), resultPanel: $('result-panel'),
    resultInfo: $('result-info'), compare: $('compare'), hold: $('hold'), continue: $('continue'),
    download: $('download'), back: $('back'), history: $('history'), historyEmpty: $('history-empty'),
  };
  const SVG = 'http://www.w3.org/2000/svg';
  const SEED_MAX = 4294967295;
  const OP_LABEL = {select: 'Selection', erase: 'Erase', replace: 'Replace'};

  const state = {
    config: null,
    image: null, // the image being edited: {id, name, width, height, url, note}
    sel: {points: [], box: null}, // points: [x, y, label] in image pixels; box: [x0, y0, x1, y1]
    undo: [],
    redo: [],
    mask: null, // the selection's mask: {mask, overlay, score, pixels, sent, key}
    masks: new Map(), // selection key -> mask answer (undo/redo are instant)
    selecting: false,
    selectAgain: false,
    result: null, // the history entry shown in the before/after view
    busy: null, // the edit running ('erase' | 'replace')
    lastSeconds: {},
    comparePos: 50,
    holding: false,
    drag: null,
  };

  // ------------------------------------------------------------------ server
  class ApiError extends Error {
    constructor(info) {
      super(info.message);
      this.info = info;
    }
  }

  async function api(method, path, body, headers) {
    const options = {method, headers: {...(headers || {})}};
    if (method === 'POST') {
      options.headers['X-MME-UI'] = '1';
      options.body = body;
    }
    let response;
    try {
      response = await fetch(path, options);
    } catch (err) {
      throw new ApiError({code: 'offline', message: `the page cannot reach mme ui (${err.message}); is it still running?`});
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      throw new ApiError((data && data.error) || {code: `http_${response.status}`, message: `HTTP ${response.status}`});
    }
    return data;
  }

  let jobsFinished = 0;

  async function runJob(op, params, onUpdate) {
    try {
      let snap = await api('POST', '/api/jobs', JSON.stringify({op, ...params}), {'Content-Type': 'application/json'});
      while (snap.state !== 'done' && snap.state !== 'failed') {
        onUpdate(snap);
        snap = await api('GET', `/api/jobs/${snap.id}?wait=2`);
      }
      if (snap.state === 'failed') throw new ApiError(snap.error);
      return snap;
    } finally {
      jobsFinished += 1;
    }
  }

  // Published once the page shows a job's outcome (mask, result, history), so scripts that wait
  // for it never see a half-updated page.
  function publishJobsFinished() {
    document.body.dataset.jobs = String(jobsFinished);
  }

  // ------------------------------------------------------------------ status, progress, errors
  const activity = {op: null, label: '', started: 0, snap: null, timer: 0};

  function startActivity(op, label) {
    clearInterval(activity.timer);
    Object.assign(activity, {op, label, started: performance.now(), snap: null});
    el.progress.hidden = false;
    const expected = state.lastSeconds[op];
    el.progress.classList.toggle('indeterminate', !expected);
    el.progressBar.style.width = expected ? '0%' : '';
    renderActivity();
    activity.timer = setInterval(renderActivity, 100);
  }

  function renderActivity() {
    const seconds = (performance.now() - activity.started) / 1000;
    const snap = activity.snap;
    const phase = snap && (snap.state === 'loading_model' || snap.state === 'retrying') ? snap.state : 'running';
    el.status.dataset.state = phase;
    el.status.dataset.op = activity.op;
    if (phase === 'loading_model') {
      el.statusText.textContent = `Loading the model… ${snap.message} · ${seconds.toFixed(0)} s`;
    } else if (phase === 'retrying') {
      el.statusText.textContent = `${activity.label}… ${snap.message} · ${seconds.toFixed(1)} s`;
    } else {
      el.statusText.textContent = `${activity.label}… ${seconds.toFixed(1)} s`;
    }
    const expected = state.lastSeconds[activity.op];
    if (expected && phase === 'running') {
      el.progress.classList.remove('indeterminate');
      el.progressBar.style.width = `${Math.min(95, (100 * seconds) / expected)}%`;
    } else if (phase !== 'running') {
      el.progress.classList.add('indeterminate');
      el.progressBar.style.width = '';
    }
  }

  function stopActivity(text) {
    clearInterval(activity.timer);
    activity.op = null;
    el.progress.hidden = true;
    el.status.dataset.state = 'idle';
    delete el.status.dataset.op;
    if (text !== undefined) el.statusText.textContent = text;
  }

  function showError(title, err) {
    const info = err instanceof ApiError ? err.info : {message: String(err && err.message ? err.message : err)};
    el.errorTitle.textContent = `${title}:`;
    el.errorMessage.textContent = info.message;
    const detail = [];
    if (info.model) detail.push(`model ${info.model}`);
    if (info.code) detail.push(info.code);
    if (info.status) detail.push(`HTTP ${info.status}`);
    el.errorDetail.textContent = detail.length ? `(${detail.join(' · ')})` : '';
    el.error.dataset.code = info.code || '';
    el.error.hidden = false;
  }

  function clearError() {
    el.error.hidden = true;
  }

  const duration = (s) => (s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(1)} s`);
  const megabytes = (n) => `${(n / 1e6).toFixed(1)} MB`;
  const megapixels = (n) => `${(n / 1e6).toFixed(1)} megapixels`;

  // ------------------------------------------------------------------ loading an image
  async function openFile(file) {
    if (!file) return;
    clearError();
    const limits = state.config.limits;
    if (file.size > limits.max_upload_bytes) {
      showError('Image too large', `${file.name} is ${megabytes(file.size)}; the limit is ${megabytes(limits.max_upload_bytes)}. ` +
        'Use a smaller photo or a JPEG.');
      return;
    }
    try {
      const bitmap = await createImageBitmap(file);
      const pixels = bitmap.width * bitmap.height;
      const size = `${bitmap.width}×${bitmap.height}`;
      bitmap.close();
      if (pixels > limits.max_pixels) {
        showError('Image too large', `${file.name} is ${size} = ${megapixels(pixels)}; the limit is ${megapixels(limits.max_pixels)}.`);
        return;
      }
    } catch (err) {
      // not decodable by the browser: the server decides (it reads more formats, and says why not)
    }
    startActivity('load', `Loading ${file.name}`);
    try {
      const image = await api('POST', '/api/images', file,
        {'Content-Type': 'application/octet-stream', 'X-Filename': encodeURIComponent(file.name)});
      await setImage(image);
      stopActivity(`Loaded ${image.name} (${image.width}×${image.height}). Click the object to select it.`);
    } catch (err) {
      stopActivity(state.image ? 'Ready.' : 'Open a photo to start.');
      showError('Cannot open this file', err);
    }
  }

  async function setImage(image) {
    state.image = image;
    state.sel = {points: [], box: null};
    state.undo = [];
    state.redo = [];
    state.masks.clear();
    state.result = null;
    setMask(null);
    el.base.src = image.url;
    try {
      await el.base.decode();
    } catch (err) {
      // shown as a broken image; sizes still come from the server
    }
    el.dropzone.hidden = true;
    el.view.hidden = false;
    el.imageInfo.textContent = `${image.name} · ${image.width}×${image.height}` + (image.note ? ` · ${image.note}` : '');
    showSelectionView();
    layout();
  }

  // ------------------------------------------------------------------ layout
  function layout() {
    if (!state.image) return;
    const pad = 16;
    const room = {w: el.stage.clientWidth - 2 * pad, h: el.stage.clientHeight - 2 * pad};
    const {width, height} = currentViewSize();
    const scale = Math.min(room.w / width, room.h / height);
    el.base.style.width = `${Math.max(1, Math.floor(width * scale))}px`;
    el.base.style.height = `${Math.max(1, Math.floor(height * scale))}px`;
    drawMarks();
  }

  function currentViewSize() {
    const shown = state.result ? state.result.source : state.image;
    return {width: shown.width, height: shown.height};
  }

  // ------------------------------------------------------------------ selection
  const selKey = () => JSON.stringify([state.image.id, state.sel.points, state.sel.box, Number(el.grow.value)]);

  function commit(sel) {
    state.undo.push(state.sel);
    state.redo = [];
    state.sel = sel;
    selectionChanged();
  }

  function undo() {
    if (!state.undo.length || state.result) return;
    state.redo.push(state.sel);
    state.sel = state.undo.pop();
    selectionChanged();
  }

  function redo() {
    if (!state.redo.length || state.result) return;
    state.undo.push(state.sel);
    state.sel = state.redo.pop();
    selectionChanged();
  }

  function clearSelection() {
    if (state.sel.points.length || state.sel.box) commit({points: [], box: null});
  }

  function selectionChanged() {
    drawMarks();
    updateButtons();
    requestMask();
  }

  const hasSelection = () => state.sel.points.length > 0 || state.sel.box !== null;

  async function requestMask() {
    if (!state.image) return;
    if (!hasSelection()) {
      setMask(null);
      return;
    }
    if (state.masks.has(selKey())) {
      setMask(state.masks.get(selKey()));
      return;
    }
    if (state.selecting) {
      state.selectAgain = true;
      return;
    }
    state.selecting = true;
    clearError();
    try {
      do {
        state.selectAgain = false;
        if (!hasSelection()) {
          setMask(null);
          continue;
        }
        const key = selKey();
        if (!state.masks.has(key)) {
          const grow = Number(el.grow.value);
          const params = {image: state.image.id, points: state.sel.points, box: state.sel.box,
            grow: Math.max(0, grow), shrink: Math.max(0, -grow)};
          if (!state.busy) startActivity('select', 'Selecting');
          const snap = await runJob('select', params, (s) => { if (activity.op === 'select') activity.snap = s; });
          state.masks.set(key, {...snap.result, key, seconds: snap.elapsed});
          state.lastSeconds.select = snap.elapsed;
        }
        if (key === selKey()) setMask(state.masks.get(key));
      } while (state.selectAgain);
      if (activity.op === 'select') stopActivity(state.mask ? `Selected in ${duration(state.mask.seconds)}.` : 'Ready.');
    } catch (err) {
      if (activity.op === 'select') stopActivity('Ready.');
      showError('Selection failed', err);
    } finally {
      state.selecting = false;
      updateButtons();
      publishJobsFinished();
    }
  }

  function setMask(mask) {
    state.mask = mask;
    el.overlay.hidden = !mask || !el.showMask.checked || Boolean(state.result);
    el.downloadMask.hidden = !mask;
    if (mask) {
      el.overlay.src = mask.overlay;
      el.downloadMask.href = `/api/masks/${mask.mask}`;
      el.downloadMask.setAttribute('download', `${state.image.name.replace(/\.[^.]*$/, '')}-mask.png`);
      const reuse = mask.sent === 'image_id' ? 'photo reused on the model, only its id was sent'
        : 'photo sent to the model';
      el.score.textContent = `Score ${mask.score.toFixed(3)} · ${mask.pixels.toLocaleString('en')} px selected · ${reuse}`;
      el.score.dataset.sent = mask.sent;
      el.score.classList.toggle('warn', mask.pixels === 0 || mask.ignored_args.length > 0);
      if (mask.pixels === 0) el.score.textContent += ' · the mask is empty: shrink less or click elsewhere';
      if (mask.ignored_args.length) el.score.textContent += ` · the model ignored: ${mask.ignored_args.join(', ')}`;
    } else {
      el.overlay.removeAttribute('src');
      el.score.textContent = state.image ? 'No selection: click the object.' : 'No selection yet.';
      delete el.score.dataset.sent;
      el.score.classList.remove('warn');
    }
    updateButtons();
  }

  // ------------------------------------------------------------------ marks (points, box)
  function svgEl(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    parent.appendChild(node);
    return node;
  }

  function drawMarks() {
    const svg = el.marks;
    svg.replaceChildren();
    if (!state.image || state.result) return;
    const {width, height} = state.image;
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    svg.setAttribute('preserveAspectRatio', 'none');
    const shown = el.base.getBoundingClientRect().width || width;
    const unit = width / shown; // image pixels per screen pixel
    const box = state.drag && state.drag.moved ? boxOf(state.drag.start, state.drag.now) : state.sel.box;
    if (box) {
      svgEl('rect', {class: `box${state.drag && state.drag.moved ? ' draft' : ''}`, x: box[0], y: box[1],
        width: box[2] - box[0], height: box[3] - box[1], 'stroke-width': 2.5 * unit,
        'stroke-dasharray': `${8 * unit} ${5 * unit}`}, svg);
    }
    for (const [x, y, label] of state.sel.points) {
      const g = svgEl('g', {class: label ? 'include' : 'exclude'}, svg);
      svgEl('circle', {class: 'dot', cx: x + 0.5, cy: y + 0.5, r: 8 * unit, 'stroke-width': 2 * unit}, g);
      const arm = 4 * unit;
      svgEl('line', {class: 'sign', x1: x + 0.5 - arm, y1: y + 0.5, x2: x + 0.5 + arm, y2: y + 0.5, 'stroke-width': 2 * unit}, g);
      if (label) {
        svgEl('line', {class: 'sign', x1: x + 0.5, y1: y + 0.5 - arm, x2: x + 0.5, y2: y + 0.5 + arm, 'stroke-width': 2 * unit}, g);
      }
    }
  }

  function boxOf(a, b) {
    return [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]) + 1, Math.max(a[1], b[1]) + 1];
  }

  function toImage(event) {
    const rect = el.base.getBoundingClientRect();
    const {width, height} = currentViewSize();
    const x = Math.floor(((event.clientX - rect.left) / rect.width) * width);
    const y = Math.floor(((event.clientY - rect.top) / rect.height) * height);
    return [Math.min(width - 1, Math.max(0, x)), Math.min(height - 1, Math.max(0, y))];
  }

  function onPointerDown(event) {
    if (!state.image || (event.button !== 0 && event.button !== 2)) return;
    event.preventDefault();
    el.view.setPointerCapture(event.pointerId);
    if (state.result) {
      setCompare(event);
      state.drag = {compare: true};
      return;
    }
    state.drag = {start: toImage(event), now: toImage(event), x: event.clientX, y: event.clientY,
      exclude: event.button === 2 || event.shiftKey, moved: false};
  }

  function onPointerMove(event) {
    const drag = state.drag;
    if (!drag) return;
    if (drag.compare) {
      setCompare(event);
      return;
    }
    drag.now = toImage(event);
    if (!drag.moved && Math.hypot(event.clientX - drag.x, event.clientY - drag.y) > 6) drag.moved = true;
    if (drag.moved) drawMarks();
  }

  function onPointerUp(event) {
    const drag = state.drag;
    state.drag = null;
    if (!drag || drag.compare) return;
    if (drag.moved) {
      const box = boxOf(drag.start, toImage(event));
      if (box[2] - box[0] >= 2 && box[3] - box[1] >= 2) {
        commit({points: state.sel.points, box});
      } else {
        drawMarks();
      }
      return;
    }
    if (state.sel.points.length >= state.config.limits.max_points) {
      showError('Too many points', `at most ${state.config.limits.max_points}; undo some or reset`);
      return;
    }
    const [x, y] = drag.start;
    commit({points: [...state.sel.points, [x, y, drag.exclude || event.shiftKey ? 0 : 1]], box: state.sel.box});
  }

  // ------------------------------------------------------------------ edits
  function numberOrNull(input) {
    const text = input.value.trim();
    return text === '' ? null : Number(text);
  }

  async function erase() {
    if (!canEdit()) return;
    await edit('erase', {}, 'Erasing (LaMa)');
  }

  async function replace() {
    if (!canEdit()) return;
    const prompt = el.prompt.value.trim();
    if (!prompt) {
      showError('Write a prompt', 'say what to paint into the selection');
      el.prompt.focus();
      return;
    }
    let seed = null;
    if (!el.seedRandom.checked) {
      seed = Number(el.seed.value.trim());
      if (el.seed.value.trim() === '' || !Number.isInteger(seed) || seed < 0 || seed > SEED_MAX) {
        showError('Seed', `a seed is a whole number from 0 to ${SEED_MAX}, or tick "random"`);
        return;
      }
    }
    const strength = Number(el.strength.value);
    const params = {prompt, negative_prompt: el.negative.value.trim() || null, seed,
      steps: numberOrNull(el.steps), guidance: numberOrNull(el.guidance), strength: strength < 1 ? strength : null};
    const steps = params.steps ? `${params.steps} steps` : 'default steps';
    await edit('replace', params, `Replacing (Stable Diffusion, ${steps}, strength ${strength.toFixed(2)})`);
  }

  const canEdit = () => Boolean(state.image && state.mask && state.mask.pixels > 0 && !state.busy && !state.selecting);

  async function edit(op, params, label) {
    state.busy = op;
    updateButtons();
    clearError();
    startActivity(op, label);
    try {
      const snap = await runJob(op, {image: state.image.id, mask: state.mask.mask, ...params}, (s) => { activity.snap = s; });
      state.lastSeconds[op] = snap.elapsed;
      const entry = snap.result;
      let done = `${OP_LABEL[op]} done in ${duration(snap.elapsed)}.`;
      if (op === 'replace') {
        el.seedUsed.textContent = `used: ${entry.params.seed}`;
        el.seed.value = entry.params.seed;
        done = `${OP_LABEL[op]} done in ${duration(snap.elapsed)} with seed ${entry.params.seed}.`;
      }
      if (entry.ignored_args.length) done += ` The model ignored: ${entry.ignored_args.join(', ')}.`;
      stopActivity(done);
      showResult(entry);
      await refreshHistory();
    } catch (err) {
      stopActivity('Ready.');
      showError(`${OP_LABEL[op]} failed`, err);
    } finally {
      state.busy = null;
      updateButtons();
      publishJobsFinished();
    }
  }

  // ------------------------------------------------------------------ results
  function showResult(entry) {
    state.result = entry;
    el.base.src = entry.source.url;
    el.after.src = entry.result.url;
    el.after.hidden = false;
    el.overlay.hidden = true;
    el.divider.hidden = false;
    el.view.classList.add('result');
    el.resultPanel.hidden = false;
    el.download.href = entry.result.url;
    el.download.setAttribute('download', entry.result.name);
    const what = entry.op === 'replace'
      ? `Replaced with “${entry.params.prompt}” (seed ${entry.params.seed}${entry.params.strength ? `, strength ${entry.params.strength}` : ''})`
      : 'Erased';
    el.resultInfo.textContent = `${what} · ${entry.result.width}×${entry.result.height}` + (entry.result.note ? ` · ${entry.result.note}` : '');
    el.resultInfo.classList.toggle('warn', Boolean(entry.result.note));
    renderCompare();
    markCurrentHistory();
    layout();
  }

  function showSelectionView() {
    state.result = null;
    if (state.image) el.base.src = state.image.url;
    el.after.hidden = true;
    el.after.removeAttribute('src');
    el.divider.hidden = true;
    el.view.classList.remove('result');
    el.resultPanel.hidden = true;
    el.overlay.hidden = !state.mask || !el.showMask.checked;
    markCurrentHistory();
    layout();
    updateButtons();
  }

  function setCompare(event) {
    const rect = el.base.getBoundingClientRect();
    state.comparePos = Math.round(Math.min(100, Math.max(0, ((event.clientX - rect.left) / rect.width) * 100)));
    el.compare.value = state.comparePos;
    renderCompare();
  }

  function renderCompare() {
    const pos = state.holding ? 100 : state.comparePos;
    el.after.style.clipPath = `inset(0 0 0 ${pos}%)`;
    el.divider.style.left = `${pos}%`;
    el.view.dataset.holding = state.holding ? '1' : '0';
  }

  function hold(on) {
    if (!state.result || state.holding === on) return;
    state.holding = on;
    renderCompare();
  }

  async function continueFromResult() {
    if (!state.result) return;
    const image = state.result.result;
    await setImage(image);
    el.statusText.textContent = `Editing the result (${image.width}×${image.height}). Click the next object.`;
  }

  // ------------------------------------------------------------------ history
  async function refreshHistory() {
    let entries = [];
    try {
      entries = (await api('GET', '/api/history')).history;
    } catch (err) {
      return;
    }
    el.history.replaceChildren();
    for (const entry of entries) {
      const item = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.dataset.result = entry.result.id;
      const thumb = document.createElement('img');
      thumb.src = entry.result.url;
      thumb.alt = '';
      thumb.loading = 'lazy';
      const text = document.createElement('span');
      const when = new Date(entry.time * 1000).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'});
      text.textContent = entry.op === 'replace'
        ? `${when} · Replace: ${entry.params.prompt} (seed ${entry.params.seed})` : `${when} · Erase`;
      button.append(thumb, text);
      button.addEventListener('click', () => showResult(entry));
      item.appendChild(button);
      el.history.appendChild(item);
    }
    el.historyEmpty.hidden = entries.length > 0;
    markCurrentHistory();
  }

  function markCurrentHistory() {
    for (const button of el.history.querySelectorAll('button')) {
      button.classList.toggle('current', Boolean(state.result) && button.dataset.result === state.result.result.id);
    }
  }

  // ------------------------------------------------------------------ controls
  function updateButtons() {
    const selecting = Boolean(state.image) && !state.result;
    el.undo.disabled = !selecting || state.undo.length === 0;
    el.redo.disabled = !selecting || state.redo.length === 0;
    el.reset.disabled = !selecting || !hasSelection();
    el.erase.disabled = !canEdit();
    el.replace.disabled = !canEdit();
    el.view.classList.toggle('busy', Boolean(state.busy));
    document.body.dataset.busy = state.busy || '';
  }

  function renderGrow() {
    const value = Number(el.grow.value);
    el.growOut.textContent = value > 0 ? `+${value} px` : value < 0 ? `−${-value} px` : '0 px';
  }

  let growTimer = 0;
  function onGrow() {
    renderGrow();
    clearTimeout(growTimer);
    growTimer = setTimeout(requestMask, 200);
  }

  function isTyping(target) {
    return target instanceof HTMLTextAreaElement
      || (target instanceof HTMLInputElement && !['checkbox', 'range', 'button', 'file'].includes(target.type));
  }

  function onKeyDown(event) {
    if (el.help.open) return;
    const mod = event.ctrlKey || event.metaKey;
    if (isTyping(event.target)) {
      if (mod && event.key === 'Enter' && event.target === el.prompt) {
        event.preventDefault();
        replace();
      } else if (event.key === 'Escape') {
        event.target.blur();
      }
      return;
    }
    const key = event.key.toLowerCase();
    if (mod && key === 'z') {
      event.preventDefault();
      if (event.shiftKey) redo(); else undo();
    } else if (mod && key === 'y') {
      event.preventDefault();
      redo();
    } else if (event.key === 'Escape') {
      event.preventDefault();
      if (state.result) showSelectionView(); else clearSelection();
    } else if (mod || event.altKey) {
      // leave the browser's own shortcuts alone
    } else if (key === 'b' && !event.repeat) {
      hold(true);
    } else if (key === 'e') {
      erase();
    } else if (key === 'm') {
      el.showMask.checked = !el.showMask.checked;
      setMask(state.mask);
    } else if (key === 'o') {
      el.file.click();
    } else if (event.key === '?') {
      el.help.showModal();
    }
  }

  function bind() {
    el.open.addEventListener('click', () => el.file.click());
    el.open2.addEventListener('click', () => el.file.click());
    el.file.addEventListener('change', () => {
      const file = el.file.files[0];
      el.file.value = '';
      openFile(file);
    });
    el.helpOpen.addEventListener('click', () => el.help.showModal());
    el.helpClose.addEventListener('click', () => el.help.close());
    el.errorClose.addEventListener('click', clearError);

    for (const name of ['dragenter', 'dragover']) {
      document.addEventListener(name, (event) => {
        event.preventDefault();
        el.stage.classList.add('dragging');
      });
    }
    document.addEventListener('dragleave', (event) => {
      if (!event.relatedTarget) el.stage.classList.remove('dragging');
    });
    document.addEventListener('drop', (event) => {
      event.preventDefault();
      el.stage.classList.remove('dragging');
      const file = event.dataTransfer && event.dataTransfer.files[0];
      if (file) openFile(file);
    });

    el.view.addEventListener('pointerdown', onPointerDown);
    el.view.addEventListener('pointermove', onPointerMove);
    el.view.addEventListener('pointerup', onPointerUp);
    el.view.addEventListener('pointercancel', () => { state.drag = null; drawMarks(); });
    el.view.addEventListener('contextmenu', (event) => event.preventDefault());

    el.undo.addEventListener('click', undo);
    el.redo.addEventListener('click', redo);
    el.reset.addEventListener('click', clearSelection);
    el.grow.addEventListener('input', onGrow);
    el.showMask.addEventListener('change', () => setMask(state.mask));
    el.erase.addEventListener('click', erase);
    el.replace.addEventListener('click', replace);
    el.seedRandom.addEventListener('change', () => { el.seed.disabled = el.seedRandom.checked; });
    el.strength.addEventListener('input', () => { el.strengthOut.textContent = Number(el.strength.value).toFixed(2); });
    el.compare.addEventListener('input', () => {
      state.comparePos = Number(el.compare.value);
      renderCompare();
    });
    el.hold.addEventListener('pointerdown', () => hold(true));
    for (const name of ['pointerup', 'pointerleave', 'pointercancel']) el.hold.addEventListener(name, () => hold(false));
    el.continue.addEventListener('click', continueFromResult);
    el.back.addEventListener('click', showSelectionView);

    document.addEventListener('keydown', onKeyDown);
    document.addEventListener('keyup', (event) => { if (event.key.toLowerCase() === 'b') hold(false); });
    window.addEventListener('blur', () => hold(false));
    new ResizeObserver(layout).observe(el.stage);
  }

  async function start() {
    bind();
    renderGrow();
    try {
      state.config = await api('GET', '/api/config');
    } catch (err) {
      showError('The page cannot start', err);
      return;
    }
    const limits = state.config.limits;
    el.backend.textContent = `Models: ${state.config.backend}`;
    el.limits.textContent = `PNG, JPEG or WebP · up to ${megabytes(limits.max_upload_bytes)} and ${megapixels(limits.max_pixels)}`;
    el.grow.min = -limits.max_shrink;
    el.grow.max = limits.max_grow;
    el.prompt.maxLength = limits.max_prompt_chars;
    el.negative.maxLength = limits.max_prompt_chars;
    await refreshHistory();
    document.body.dataset.ready = '1';
  }

  start();
})();
