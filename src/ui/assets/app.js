// The funcie console page: the history's list (live, through server-sent events), one
// invocation's detail, the latency chart, Replay and Save as fixture. No framework, no
// network beyond this server; every call carries the token the URL came with.
'use strict';

const token = new URLSearchParams(location.search).get('token') || '';
const $ = (id) => document.getElementById(id);
const rows = new Map();  // id -> summary
let selected = null;
let lastId = 0;

async function api(path, options = {}) {
  const res = await fetch(path, {
    ...options,
    headers: { 'X-Funcie-Token': token, ...(options.body ? { 'Content-Type': 'application/json' } : {}) },
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || `${res.status}`);
  return body;
}

function ms(us) { return us >= 10000 ? `${Math.round(us / 1000)} ms` : `${(us / 1000).toFixed(1)} ms`; }
function time(msSince) { return new Date(msSince).toLocaleTimeString([], { hour12: false }) + '.' + String(msSince % 1000).padStart(3, '0'); }

/** JSON pretty-printed when it is JSON, else as it came. */
function pretty(text) {
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
}

function filters() {
  return { app: $('f-app').value, outcome: $('f-outcome').value, trigger: $('f-trigger').value.trim(), q: $('f-text').value.trim() };
}

function matches(e) {
  const f = filters();
  if (f.app && e.app !== f.app) return false;
  if (f.outcome && e.outcome !== f.outcome) return false;
  if (f.trigger && !e.trigger.startsWith(f.trigger)) return false;
  if (f.q && !(found && found.has(e.id)) && ![e.request_id, e.trigger, e.error_message, e.error_type].some((s) => s.includes(f.q))) return false;
  return true;
}

/** The text filter also searches the events, on the server (they are not in the list). */
let found = null;
let searching = null;
function search() {
  clearTimeout(searching);
  searching = setTimeout(async () => {
    const q = $('f-text').value.trim();
    found = null;
    if (q) {
      const { invocations } = await api(`/api/invocations?limit=1000&q=${encodeURIComponent(q)}`);
      for (const e of invocations) if (!rows.has(e.id)) rows.set(e.id, e);
      found = new Set(invocations.map((e) => e.id));
    }
    render();
  }, 200);
}

function rowOf(e, fresh) {
  const tr = document.createElement('tr');
  tr.dataset.id = e.id;
  tr.dataset.requestId = e.request_id;
  if (fresh) tr.classList.add('fresh');
  if (selected === e.id) tr.classList.add('selected');
  const cells = [String(e.id), time(e.received_ms), e.app, e.request_id.slice(0, 8), e.trigger, ms(e.duration_us)];
  for (const [i, text] of cells.entries()) {
    const td = document.createElement('td');
    td.textContent = text;
    if (i === 4) td.className = 'trigger';
    if (i === 4 && e.source !== 'tunnel') {
      const tag = document.createElement('span');
      tag.className = 'tag';
      tag.textContent = e.source === 'replay' ? `replay of #${e.replay_of}` : e.source;
      td.append(tag);
    }
    tr.append(td);
  }
  const out = document.createElement('td');
  out.className = `outcome outcome-${e.outcome}`;
  out.textContent = e.outcome === 'ok' ? (e.status ? `ok ${e.status}` : 'ok') : (e.error_type || e.outcome);
  tr.append(out);
  tr.addEventListener('click', () => show(e.id));
  return tr;
}

function addApp(app) {
  const select = $('f-app');
  if ([...select.options].some((o) => o.value === app)) return;
  const o = document.createElement('option');
  o.value = app;
  o.textContent = app;
  select.append(o);
}

function render() {
  const body = $('list').tBodies[0];
  body.replaceChildren(...[...rows.values()].filter(matches).sort((a, b) => b.id - a.id).slice(0, 500).map((e) => rowOf(e, false)));
  $('empty').hidden = rows.size > 0;
}

function add(e) {
  if (rows.has(e.id)) return;  // a replay's row comes both as its answer and as an event
  rows.set(e.id, e);
  lastId = Math.max(lastId, e.id);
  addApp(e.app);
  $('empty').hidden = true;
  if (!matches(e)) return;
  $('list').tBodies[0].prepend(rowOf(e, true));
  chart();
}

async function load() {
  const list = await api('/api/invocations?limit=500');
  for (const e of list.invocations) { rows.set(e.id, e); addApp(e.app); lastId = Math.max(lastId, e.id); }
  render();
  chart();
  live();
}

function live() {
  const source = new EventSource(`/api/events?token=${encodeURIComponent(token)}&after=${lastId}`);
  source.addEventListener('open', () => { $('live').textContent = 'live'; $('live').className = 'live on'; });
  source.addEventListener('error', () => { $('live').textContent = 'reconnecting…'; $('live').className = 'live off'; });
  source.addEventListener('invocation', (m) => add(JSON.parse(m.data)));
}

/** The last 100 durations of the app in the filter (or of the newest invocation's app). */
async function chart() {
  const app = $('f-app').value || ([...rows.values()].sort((a, b) => b.id - a.id)[0] || {}).app;
  const svg = $('chart');
  if (!app) { svg.replaceChildren(); return; }
  const { points } = await api(`/api/latency?app=${encodeURIComponent(app)}&n=100`);
  const max = Math.max(1, ...points.map((p) => p.duration_us));
  const ns = 'http://www.w3.org/2000/svg';
  const width = 600 / 100;
  svg.replaceChildren(...points.map((p, i) => {
    const bar = document.createElementNS(ns, 'rect');
    const h = Math.max(1, (p.duration_us / max) * 110);
    bar.setAttribute('x', String(i * width));
    bar.setAttribute('y', String(120 - h));
    bar.setAttribute('width', String(width - 1));
    bar.setAttribute('height', String(h));
    bar.setAttribute('class', `bar-${p.outcome}`);
    const title = document.createElementNS(ns, 'title');
    title.textContent = `#${p.id} ${ms(p.duration_us)} ${p.outcome}`;
    bar.append(title);
    bar.addEventListener('click', () => show(p.id));
    return bar;
  }));
  const sorted = points.map((p) => p.duration_us).sort((a, b) => a - b);
  const pct = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  $('chart-caption').textContent = points.length
    ? `${app}: last ${points.length} invocations, p50 ${ms(pct(0.5))}, p95 ${ms(pct(0.95))}, max ${ms(max)}`
    : '';
}

function traceOf(response) {
  try {
    const body = JSON.parse(response);
    const t = body.trace || body.stackTrace;
    return Array.isArray(t) ? t.join('\n') : (typeof t === 'string' ? t : '');
  } catch { return ''; }
}

async function show(id) {
  const e = await api(`/api/invocations/${id}`);
  selected = id;
  for (const tr of $('list').tBodies[0].rows) tr.classList.toggle('selected', Number(tr.dataset.id) === id);
  $('detail').hidden = false;
  $('detail').dataset.id = id;
  $('d-title').textContent = `#${e.id} ${e.app} ${e.request_id}`;
  $('d-meta').textContent = [e.trigger, e.environment, e.session && `session ${e.session.slice(0, 8)}`,
    e.source === 'replay' ? `replay of #${e.replay_of}` : e.source].filter(Boolean).join(' · ');
  const answered = e.received_ms + Math.round(e.duration_us / 1000);
  const steps = [['received', time(e.received_ms)], [e.cold ? 'started (cold start)' : 'started (warm)', time(e.received_ms)],
    ['answered', `${time(answered)} (${ms(e.duration_us)})`]];
  $('d-timeline').replaceChildren(...steps.map(([what, when]) => {
    const li = document.createElement('li');
    li.textContent = `${what} ${when}`;
    return li;
  }));
  const failed = e.outcome !== 'ok';
  $('d-error').hidden = !failed;
  $('d-error-type').textContent = e.error_type;
  $('d-error-message').textContent = e.error_message;
  $('d-trace').textContent = failed ? traceOf(e.response) : '';
  $('d-event').textContent = pretty(e.event);
  $('d-response-title').textContent = failed ? 'error' : 'response';
  $('d-response').textContent = pretty(e.response);
  $('d-logs').textContent = e.logs || '(no lines)';
  $('replay-event').value = pretty(e.event);
  $('save-name').value = '';
  $('action-result').textContent = '';
}

async function replay() {
  const id = Number($('detail').dataset.id);
  $('action-result').textContent = 'running…';
  try {
    const e = await api('/api/replay', { method: 'POST', body: JSON.stringify({ id, event: $('replay-event').value }) });
    add(e);
    $('action-result').textContent = `replayed as #${e.id}: ${e.outcome}`;
    await show(e.id);
    $('action-result').textContent = `replayed as #${e.id}: ${e.outcome}`;
  } catch (err) {
    $('action-result').textContent = `replay failed: ${err.message}`;
  }
}

async function save(ev) {
  ev.preventDefault();
  const id = Number($('detail').dataset.id);
  try {
    const r = await api('/api/fixtures', { method: 'POST', body: JSON.stringify({ id, name: $('save-name').value }) });
    $('action-result').textContent = `saved ${r.path}`;
  } catch (err) {
    $('action-result').textContent = `not saved: ${err.message}`;
  }
}

document.addEventListener('DOMContentLoaded', () => {
  for (const id of ['f-app', 'f-outcome']) $(id).addEventListener('change', () => { render(); chart(); });
  $('f-trigger').addEventListener('input', render);
  $('f-text').addEventListener('input', search);
  $('filters').addEventListener('submit', (ev) => ev.preventDefault());
  $('replay').addEventListener('click', replay);
  $('save-form').addEventListener('submit', save);
  const hash = Number(location.hash.slice(1));
  load().then(() => { if (hash) show(hash); }).catch((err) => {
    $('empty').textContent = `cannot load the history: ${err.message}`;
  });
});
