// Small DOM helpers shared by the console pages: element building (never innerHTML with data),
// labelled fields, tables, confirmation dialogs, flash messages.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let seq = 0;
/** A labelled input: `<div class=field><label for=id>…</label><input id=id …></div>`. */
export function field(label, attrs = {}) {
  const id = attrs.id || `f${++seq}`;
  const input = h(attrs.tag || 'input', { ...attrs, tag: undefined, id });
  return h('div', { class: 'field' }, h('label', { for: id }, label), input);
}

/** A labelled select with `[value, text]` options. */
export function select(label, name, options, value) {
  const id = `f${++seq}`;
  const sel = h('select', { id, name }, options.map(([v, t]) => h('option', { value: v, selected: v === value }, t)));
  return h('div', { class: 'field' }, h('label', { for: id }, label), sel);
}

export function table(columns, rows, caption) {
  return h('table', {},
    caption ? h('caption', { class: 'sr' }, caption) : null,
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c.title)))),
    h('tbody', {}, rows.length
      ? rows.map((r) => h('tr', {}, columns.map((c) => h('td', { class: c.class }, c.cell(r)))))
      : h('tr', {}, h('td', { colspan: columns.length }, 'Nothing to show.'))));
}

export function badge(kind, value) {
  return h('span', { class: `badge ${kind}-${value}` }, value);
}

export function when(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  return h('time', { datetime: d.toISOString() }, d.toLocaleString());
}

export function flash(msg) {
  const el = document.getElementById('flash');
  el.textContent = msg || '';
}

export function errorText(e) {
  if (e && e.problem && Array.isArray(e.problem.errors) && e.problem.errors.length) {
    return `${e.message}: ${e.problem.errors.map((x) => `${x.field}: ${x.message}`).join('; ')}`;
  }
  return (e && e.message) || String(e);
}

/** A modal confirmation (the native dialog: focus trapped, Escape cancels). Resolves true/false. */
export function confirmDialog(question, confirmLabel = 'Confirm') {
  return new Promise((resolve) => {
    const yes = h('button', { type: 'submit', value: 'yes', class: 'danger' }, confirmLabel);
    const no = h('button', { type: 'submit', value: 'no', class: 'secondary' }, 'Cancel');
    const dlg = h('dialog', { 'aria-labelledby': 'dlg-q' },
      h('form', { method: 'dialog' }, h('p', { id: 'dlg-q' }, question), h('menu', {}, no, yes)));
    document.body.append(dlg);
    dlg.addEventListener('close', () => {
      resolve(dlg.returnValue === 'yes');
      dlg.remove();
    });
    dlg.showModal();
    no.focus();
  });
}

/** Replaces the page's main content and moves focus to its heading. */
export function render(title, ...content) {
  const main = document.getElementById('main');
  const heading = h('h1', { tabindex: '-1' }, title);
  main.replaceChildren(heading, ...content);
  document.title = `${title} · AriesOne console`;
  heading.focus({ preventScroll: true });
}
