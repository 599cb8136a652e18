// The tenant's live dashboard: KPI tiles, two inline-SVG charts drawn here (events per minute,
// today's live counters) and recent activity, kept current over the WebSocket
// `/v1/tenants/<slug>/live` (cookie auth, same origin). Protocol: a `snapshot` {seq, kpis, recent}
// first, then `event` {seq, event, kpis?} in sequence order, `kpis` {seq, kpis}, `heartbeat` {seq}. After a drop the
// page reconnects with `?after=<last seq>` and receives exactly what it missed; a sequence it has
// already seen is ignored, and a gap makes it resume from its last one.

import { h, render, when } from './ui.js';
import { ApiError, get } from './api.js';

const KPIS = [
  ['orders_today', 'Orders today'],
  ['active_rentals', 'Active rentals'],
  ['deliveries_due', 'Deliveries due'],
  ['pickups_due', 'Pickups due'],
  ['billed_this_month', 'Billed this month'],
  ['open_ar', 'Open AR'],
  ['stock_at_reorder_point', 'Stock at reorder point'],
];
const MONEY = new Set(['billed_this_month', 'open_ar']);
const RECENT_MAX = 25;
const MINUTES = 30;
const SVG = 'http://www.w3.org/2000/svg';

function fmt(key, v) {
  if (v === undefined || v === null) return '–';
  if (MONEY.has(key)) {
    const n = Number(v);
    return Number.isFinite(n) ? `$${n.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}` : String(v);
  }
  return String(v);
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** A bar chart of `[label, value]` pairs as inline SVG, with a text equivalent for screen readers. */
export function barChart(el, pairs, title) {
  const w = 300;
  const ht = 120;
  const max = Math.max(1, ...pairs.map(([, v]) => v));
  const bw = pairs.length ? w / pairs.length : w;
  const bars = pairs.map(([label, v], i) => {
    const bh = Math.round((v / max) * (ht - 14));
    return svg('rect', { class: 'bar', x: (i * bw + 1).toFixed(1), y: ht - bh, width: Math.max(1, bw - 2).toFixed(1), height: bh },
      svg('title', {}, `${label}: ${v}`));
  });
  const desc = pairs.filter(([, v]) => v).map(([l, v]) => `${l}: ${v}`).join(', ') || 'no data yet';
  el.replaceChildren(svg('svg', { class: 'chart', viewBox: `0 0 ${w} ${ht + 12}`, role: 'img', 'aria-label': `${title}: ${desc}` },
    svg('line', { class: 'axis', x1: 0, y1: ht, x2: w, y2: ht }),
    svg('text', { x: 0, y: ht + 11 }, pairs.length ? pairs[0][0] : ''),
    svg('text', { x: w, y: ht + 11, 'text-anchor': 'end' }, pairs.length ? pairs[pairs.length - 1][0] : ''),
    svg('text', { x: 2, y: 9 }, `max ${max}`),
    ...bars));
}

export async function dashboardPage({ slug }) {
  const state = { seq: null, kpis: {}, recent: [], times: [], seen: [] };
  // The REST snapshot first: it checks the session (401 → login, 403 mfa_required → enrolment)
  // and fills the page at once; the socket's own snapshot then takes over.
  const tenantUrl = `/v1/tenants/${encodeURIComponent(slug)}`;
  try {
    const first = await get(`${tenantUrl}/dashboard`);
    state.kpis = first.kpis || {};
    state.recent = (first.recent || []).slice(0, RECENT_MAX);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) throw e;
    await get(`${tenantUrl}/sessions`); // no dashboard route on this server: still check the session
  }
  const conn = h('span', { class: 'conn state-connecting', id: 'conn-state', dataset: { state: 'connecting', seq: '' } }, 'Connecting…');
  const tiles = h('div', { class: 'tiles' }, KPIS.map(([k, label]) => h('div', { class: 'tile', dataset: { kpi: k } },
    h('span', { class: 'label', id: `kpi-${k}-label` }, label),
    h('output', { id: `kpi-${k}`, 'aria-labelledby': `kpi-${k}-label` }, '–'))));
  const perMinute = h('div', { id: 'chart-events' });
  const counters = h('div', { id: 'chart-counters' });
  const activity = h('ul', { class: 'activity', id: 'activity', 'aria-live': 'polite' });

  render(`${slug} dashboard`,
    h('p', {}, 'Live updates: ', conn),
    h('section', { 'aria-label': 'Key figures' }, tiles),
    h('div', { class: 'charts' },
      h('figure', {}, h('figcaption', {}, `Events per minute (last ${MINUTES} min)`), perMinute),
      h('figure', {}, h('figcaption', {}, 'Today’s counters'), counters)),
    h('h2', {}, 'Recent activity'), activity);

  function setConn(kind, text) {
    conn.className = `conn state-${kind}`;
    conn.dataset.state = kind;
    conn.textContent = text;
  }

  function drawKpis() {
    for (const [k] of KPIS) document.getElementById(`kpi-${k}`).textContent = fmt(k, state.kpis[k]);
    const c = state.kpis.counters && typeof state.kpis.counters === 'object' ? state.kpis.counters : {};
    barChart(counters, Object.entries(c).map(([k, v]) => [k, Number(v) || 0]).sort((a, b) => a[0].localeCompare(b[0])), 'Today’s counters');
  }

  function drawActivity() {
    activity.replaceChildren(...state.recent.map((e) => h('li', { dataset: { type: e.type } },
      when(e.occurred_at), h('strong', {}, e.type), ' ', e.summary || '')));
    if (!state.recent.length) activity.append(h('li', {}, 'No activity yet.'));
  }

  function drawPerMinute() {
    const now = Math.floor(Date.now() / 60000);
    const buckets = new Map();
    for (let i = MINUTES - 1; i >= 0; i--) buckets.set(now - i, 0);
    for (const t of state.times) {
      const m = Math.floor(t / 60000);
      if (buckets.has(m)) buckets.set(m, buckets.get(m) + 1);
    }
    barChart(perMinute, [...buckets].map(([m, v]) => [new Date(m * 60000).toTimeString().slice(0, 5), v]), 'Events per minute');
  }

  function remember(e) {
    const t = Date.parse(e.occurred_at);
    if (Number.isFinite(t)) state.times.push(t);
    const cutoff = Date.now() - MINUTES * 60000;
    state.times = state.times.filter((x) => x >= cutoff);
  }

  // KPIs come with the events that change them; the server recomputes them at most every 250 ms, so
  // an event without them is followed, if nothing newer arrives within a second, by a REST read.
  let kpiVersion = 0;
  let kpiTimer = null;
  function refreshKpisSoon() {
    if (kpiTimer) return;
    const asked = kpiVersion;
    kpiTimer = setTimeout(async () => {
      kpiTimer = null;
      if (kpiVersion !== asked || closed) return;
      try {
        const snap = await get(`${tenantUrl}/dashboard`);
        if (kpiVersion === asked && snap.kpis) {
          state.kpis = snap.kpis;
          drawKpis();
        }
      } catch {
        // The socket stays the source; a failed read changes nothing.
      }
    }, 1000);
  }

  let ws = null;
  let closed = false;
  let retry = 0;
  let timer = null;

  function connect() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const after = state.seq === null ? '' : `?after=${state.seq}`;
    setConn(state.seq === null ? 'connecting' : 'reconnecting', state.seq === null ? 'Connecting…' : 'Reconnecting…');
    let opened = false;
    const sock = new WebSocket(`${proto}//${location.host}/v1/tenants/${encodeURIComponent(slug)}/live${after}`);
    ws = sock;
    sock.addEventListener('open', () => {
      opened = true;
      retry = 0;
      setConn('live', 'Live');
    });
    sock.addEventListener('message', (m) => {
      let msg;
      try {
        msg = JSON.parse(m.data);
      } catch {
        return;
      }
      onMessage(msg, sock);
    });
    sock.addEventListener('close', () => {
      if (ws !== sock || closed) return;
      ws = null;
      retry += 1;
      const delay = Math.min(10000, 250 * 2 ** Math.min(retry, 6));
      if (opened) setConn('reconnecting', 'Connection lost, reconnecting…');
      else setConn('unavailable', `Live updates unavailable; retrying in ${Math.round(delay / 1000)} s`);
      timer = setTimeout(connect, delay);
    });
  }

  function onMessage(msg, sock) {
    if (msg.type === 'snapshot') {
      state.seq = msg.seq;
      state.kpis = msg.kpis || {};
      state.recent = (msg.recent || []).slice(0, RECENT_MAX);
      state.seen.push(`snapshot:${msg.seq}`);
      for (const e of state.recent) remember(e);
      drawKpis();
      drawActivity();
      drawPerMinute();
    } else if (msg.type === 'kpis') {
      // The KPIs changed after events that went out without them.
      state.kpis = msg.kpis || state.kpis;
      drawKpis();
    } else if (msg.type === 'event') {
      if (state.seq !== null && msg.seq <= state.seq) return; // already shown
      if (state.seq !== null && msg.seq > state.seq + 1) {
        // A gap: resume from the last one shown (the server sends what is missing).
        sock.close();
        return;
      }
      state.seq = msg.seq;
      state.seen.push(msg.seq);
      if (msg.kpis) state.kpis = msg.kpis;
      if (msg.event) {
        state.recent.unshift(msg.event);
        state.recent.length = Math.min(state.recent.length, RECENT_MAX);
        remember(msg.event);
      }
      drawKpis();
      drawActivity();
      drawPerMinute();
      if (!msg.kpis) refreshKpisSoon();
    } else if (msg.type === 'heartbeat') {
      setConn('live', 'Live');
    }
    if (msg.kpis) {
      kpiVersion += 1;
      if (msg.type !== 'snapshot' && msg.type !== 'event') {
        state.kpis = msg.kpis;
        drawKpis();
      }
    }
    conn.dataset.seq = state.seq === null ? '' : String(state.seq);
  }

  for (const e of state.recent) remember(e);
  drawKpis();
  drawActivity();
  drawPerMinute();
  const minute = setInterval(drawPerMinute, 30000);
  connect();
  // For tests and the curious: the live state, and a way to drop the socket as a network would.
  window.ariesLive = { state, drop: () => ws && ws.close() };
  return () => {
    closed = true;
    clearInterval(minute);
    clearTimeout(timer);
    clearTimeout(kpiTimer);
    if (ws) ws.close();
    delete window.ariesLive;
  };
}
