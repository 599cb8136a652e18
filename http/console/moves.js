// The operator's Moves panel: every tenant move with its progress, kept current over the
// WebSocket `/v1/platform/live` (cookie auth, same origin; it reconnects with backoff). Protocol:
// a `snapshot` {moves: [MoveView]} first (unfinished moves and the recent finished ones), then
// `move` {move: MoveView} for each change, whichever instance runs it, and `heartbeat`. A version
// older than the one shown is ignored. A form starts a move (tenant slug, target shard from
// `/v1/platform/shards`); Resume and Cancel act on a move where they apply.

import { h, field, select, when, flash, errorText, confirmDialog, render } from './ui.js';
import { get, post } from './api.js';

const FINISHED = new Set(['done', 'rolled_back']);
/** States a move can still be cancelled in (before the flip). */
const CANCELLABLE = new Set(['pending', 'copying', 'catching_up', 'frozen']);
const STATE_TEXT = {
  pending: 'pending',
  copying: 'copying',
  catching_up: 'catching up',
  frozen: 'frozen',
  flipped: 'flipped',
  done: 'done',
  rolled_back: 'rolled back',
};

function num(n) {
  return Number(n || 0).toLocaleString('en-US');
}

/** The progress cell: a bar of rows copied while copying, the totals afterwards. */
function progressCell(m) {
  if (m.state === 'pending') return '–';
  const total = Number(m.rows_total) || 0;
  const copied = Number(m.rows_copied) || 0;
  if (m.state === 'copying') {
    const pct = total ? Math.min(100, Math.floor((copied / total) * 100)) : 0;
    const text = total ? `${num(copied)} of ${num(total)} rows (${pct}%)` : `${num(copied)} rows`;
    return h('div', { class: 'move-progress' },
      h('progress', { max: total || 1, value: Math.min(copied, total || 1), 'aria-label': `Rows copied for ${m.tenant}` }),
      h('span', {}, text));
  }
  return `${num(copied)} of ${num(total)} rows`;
}

export async function movesPage() {
  // Checks the session first (401 → login, mfa_required → enrolment) and lists the shards the
  // form offers.
  const shardList = await get('/v1/platform/shards');
  const shards = (shardList.data || shardList).filter((s) => s.status === 'active');
  const moves = new Map(); // id → MoveView
  const rows = new Map(); // id → <tr>
  const state = { moves, snapshots: 0, messages: 0 };

  const conn = h('span', { class: 'conn state-connecting', id: 'moves-conn', dataset: { state: 'connecting' } }, 'Connecting…');
  const announce = h('p', { class: 'sr', id: 'moves-announce', role: 'status', 'aria-live': 'polite' });
  const body = h('tbody', {});
  const empty = h('tr', { class: 'empty' }, h('td', { colspan: 9 }, 'No moves yet.'));
  const columns = ['Tenant', 'From → to', 'State', 'Progress', 'Changes replayed', 'Pause', 'Error', 'Updated', 'Actions'];
  const tbl = h('table', { id: 'moves-table' },
    h('caption', { class: 'sr' }, 'Tenant moves'),
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
    body);

  const startErr = h('p', { class: 'error', role: 'alert', id: 'move-error' });
  const start = h('form', { class: 'inline', id: 'start-move' },
    field('Tenant slug', { name: 'tenant', required: true, pattern: '[a-z][a-z0-9-]{2,62}', autocomplete: 'off' }),
    select('Target shard', 'to_shard', shards.map((s) => [s.name, `${s.name} (${s.tenant_count} tenant${s.tenant_count === 1 ? '' : 's'})`]), shards.length ? shards[0].name : ''),
    h('button', { type: 'submit' }, 'Start move'));
  start.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    startErr.textContent = '';
    const f = new FormData(start);
    const slug = String(f.get('tenant') || '').trim();
    try {
      const m = await post(`/v1/platform/tenants/${encodeURIComponent(slug)}/moves`, { to_shard: f.get('to_shard') });
      show(m);
      flash(`Move of ${m.tenant} to ${m.to_shard} started.`);
    } catch (e) {
      startErr.textContent = errorText(e);
    }
  });

  render('Tenant moves',
    h('p', {}, 'Live updates: ', conn),
    h('h2', {}, 'Start a move'),
    h('p', {}, 'The tenant keeps being served while its data is copied; its writes wait during a short freeze before the switch.'),
    start, startErr,
    h('h2', {}, 'Moves'),
    tbl, announce);
  drawEmpty();

  function setConn(kind, text) {
    conn.className = `conn state-${kind}`;
    conn.dataset.state = kind;
    conn.textContent = text;
  }

  function drawEmpty() {
    if (moves.size) empty.remove();
    else if (!empty.isConnected) body.append(empty);
  }

  function actionButton(m, verb, label, cls, confirmLabel) {
    return h('button', {
      type: 'button', class: cls, 'data-action': verb, 'aria-label': `${label} the move of ${m.tenant}`,
      onclick: async () => {
        const question = verb === 'cancel'
          ? `Cancel the move of ${m.tenant} to ${m.to_shard}? The tenant stays on ${m.from_shard} and the copy is deleted.`
          : `Resume the move of ${m.tenant} to ${m.to_shard} on this server?`;
        if (!(await confirmDialog(question, confirmLabel))) return;
        try {
          const after = await post(`/v1/platform/moves/${m.id}/${verb}`);
          show(after);
          flash(`Move of ${after.tenant}: ${STATE_TEXT[after.state] || after.state}.`);
        } catch (e) {
          flash(errorText(e));
        }
      },
    }, label);
  }

  function row(m) {
    const actions = [];
    if (!FINISHED.has(m.state)) actions.push(actionButton(m, 'resume', 'Resume', 'secondary', 'Resume the move'));
    if (CANCELLABLE.has(m.state)) actions.push(actionButton(m, 'cancel', 'Cancel', 'danger', 'Cancel the move'));
    return h('tr', { dataset: { moveId: m.id, state: m.state, tenant: m.tenant } },
      h('td', {}, m.tenant),
      h('td', {}, `${m.from_shard} → ${m.to_shard}`),
      h('td', {}, h('span', { class: `badge move-${m.state}` }, STATE_TEXT[m.state] || m.state)),
      h('td', {}, progressCell(m)),
      h('td', {}, m.catch_up_rounds ? `${num(m.changes_applied)} (${m.catch_up_rounds} rounds)` : num(m.changes_applied)),
      h('td', {}, m.pause_ms === undefined || m.pause_ms === null ? '' : `${num(m.pause_ms)} ms`),
      h('td', { class: m.error ? 'error' : null }, m.error || ''),
      h('td', {}, when(m.updated_at)),
      h('td', { class: 'actions' }, actions));
  }

  /** Shows a move's version unless a newer one is shown already. */
  function show(m) {
    const had = moves.get(m.id);
    if (had && Date.parse(had.updated_at) > Date.parse(m.updated_at)) return;
    moves.set(m.id, m);
    const tr = row(m);
    const old = rows.get(m.id);
    rows.set(m.id, tr);
    if (old && old.isConnected) {
      // Keep the keyboard where it was: the same button in the new row.
      const focused = old.contains(document.activeElement) ? document.activeElement.dataset.action : null;
      old.replaceWith(tr);
      if (focused) tr.querySelector(`[data-action="${focused}"]`)?.focus();
    } else {
      // Newest first (move ids are time-ordered).
      const after = [...rows.entries()].filter(([id, r]) => id < m.id && r.isConnected).sort((a, b) => (a[0] < b[0] ? 1 : -1))[0];
      if (after) body.insertBefore(tr, after[1]);
      else body.append(tr);
    }
    if (!had || had.state !== m.state) announce.textContent = `Move of ${m.tenant}: ${STATE_TEXT[m.state] || m.state}.`;
    drawEmpty();
  }

  function snapshot(list) {
    for (const r of rows.values()) r.remove();
    rows.clear();
    moves.clear();
    for (const m of [...list].sort((a, b) => (a.id < b.id ? 1 : -1))) show(m);
    drawEmpty();
  }

  let ws = null;
  let closed = false;
  let retry = 0;
  let timer = null;

  function connect() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    setConn(state.snapshots ? 'reconnecting' : 'connecting', state.snapshots ? 'Reconnecting…' : 'Connecting…');
    let opened = false;
    const sock = new WebSocket(`${proto}//${location.host}/v1/platform/live`);
    ws = sock;
    sock.addEventListener('open', () => {
      opened = true;
      retry = 0;
      setConn('live', 'Live');
    });
    sock.addEventListener('message', (e) => {
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      state.messages += 1;
      if (msg.type === 'snapshot') {
        state.snapshots += 1;
        snapshot(msg.moves || []);
      } else if (msg.type === 'move' && msg.move) {
        show(msg.move);
      }
      setConn('live', 'Live');
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

  connect();
  // For tests and the curious: the moves shown, and a way to drop the socket as a network would.
  window.ariesMoves = { state, drop: () => ws && ws.close() };
  return () => {
    closed = true;
    clearTimeout(timer);
    if (ws) ws.close();
    delete window.ariesMoves;
  };
}
