// A tenant's own pages, for its users logged in with password + TOTP (cookie session on that
// tenant's URLs only): login and enrolment, users and roles, API keys (the secret shown once,
// revoke), webhooks (list, create, delete, delivery log).

import { h, field, table, badge, when, flash, errorText, confirmDialog, render } from './ui.js';
import { get, post, del, qs } from './api.js';
import { loginForm, enrolForm } from './operator.js';

const base = (slug) => `/v1/tenants/${encodeURIComponent(slug)}`;

export function loginPage({ slug }) {
  loginForm(`Log in to ${slug}`, base(slug), `#/t/${slug}/dashboard`, `#/t/${slug}/enrol`);
}

export function enrolPage({ slug }) {
  return enrolForm(base(slug), `#/t/${slug}/dashboard`);
}

function roleBoxes(roles, legend) {
  return h('fieldset', {}, h('legend', {}, legend),
    roles.map((r) => {
      const id = `role-${legend.replace(/\W/g, '')}-${r.name}`;
      return h('span', {}, h('input', { type: 'checkbox', id, name: 'roles', value: r.name }), h('label', { for: id }, r.name));
    }));
}

export async function usersPage({ slug }) {
  const [users, roles] = await Promise.all([get(`${base(slug)}/users`), get(`${base(slug)}/roles`)]);
  const userTable = h('div', { 'aria-live': 'polite' });
  async function loadUsers(page) {
    const list = page || (await get(`${base(slug)}/users`));
    userTable.replaceChildren(table([
      { title: 'E-mail', cell: (u) => u.email },
      { title: 'Name', cell: (u) => u.display_name },
      { title: 'Status', cell: (u) => badge('status', u.status) },
      { title: 'Roles', cell: (u) => u.roles.join(', ') },
      { title: 'Actions', class: 'actions', cell: (u) => h('button', {
        type: 'button', class: 'secondary', 'aria-label': `${u.status === 'active' ? 'Disable' : 'Enable'} ${u.email}`,
        onclick: async () => {
          const verb = u.status === 'active' ? 'disable' : 'enable';
          if (!(await confirmDialog(`${verb === 'disable' ? 'Disable' : 'Enable'} ${u.email}?`, verb === 'disable' ? 'Disable' : 'Enable'))) return;
          try {
            await post(`${base(slug)}/users/${u.id}/${verb}`);
            await loadUsers();
          } catch (e) {
            flash(errorText(e));
          }
        },
      }, u.status === 'active' ? 'Disable' : 'Enable') },
    ], list.data, 'Users'));
  }
  await loadUsers(users);

  const err = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'stack' },
    field('E-mail', { type: 'email', name: 'email', required: true }),
    field('Display name', { name: 'display_name', required: true }),
    field('Password (12+ characters)', { type: 'password', name: 'password', autocomplete: 'new-password', minlength: 12, required: true }),
    roleBoxes(roles.data, 'Roles'),
    h('button', { type: 'submit' }, 'Add user'), err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    const f = new FormData(form);
    try {
      await post(`${base(slug)}/users`, { email: f.get('email'), display_name: f.get('display_name'), password: f.get('password'), roles: f.getAll('roles') }, { idempotent: true });
      form.reset();
      flash('User added.');
      await loadUsers();
    } catch (e) {
      err.textContent = errorText(e);
    }
  });

  render('Users and roles', userTable, h('h2', {}, 'Add a user'), form, h('h2', {}, 'Roles'),
    table([
      { title: 'Role', cell: (r) => r.name },
      { title: 'Kind', cell: (r) => (r.builtin ? 'built-in' : 'custom') },
      { title: 'Permissions', cell: (r) => r.permissions.join(', ') },
    ], roles.data, 'Roles'));
}

export async function apiKeysPage({ slug }) {
  const roles = await get(`${base(slug)}/roles`);
  const list = h('div', { 'aria-live': 'polite' });
  const shown = h('div', { id: 'new-key' });
  async function load() {
    const keys = await get(`${base(slug)}/api-keys`);
    list.replaceChildren(table([
      { title: 'Name', cell: (k) => k.name },
      { title: 'Prefix', cell: (k) => h('code', {}, k.prefix) },
      { title: 'Roles', cell: (k) => k.roles.join(', ') },
      { title: 'Created', cell: (k) => when(k.created_at) },
      { title: 'Last used', cell: (k) => when(k.last_used_at) },
      { title: 'Status', cell: (k) => (k.revoked_at ? h('span', { class: 'badge status-archived' }, 'revoked') : badge('status', 'active')) },
      { title: 'Actions', class: 'actions', cell: (k) => k.revoked_at ? '' : h('button', {
        type: 'button', class: 'danger', 'aria-label': `Revoke ${k.name}`,
        onclick: async () => {
          if (!(await confirmDialog(`Revoke the key “${k.name}”? Clients using it stop working.`, 'Revoke'))) return;
          try {
            await del(`${base(slug)}/api-keys/${k.id}`);
            flash('Key revoked.');
            await load();
          } catch (e) {
            flash(errorText(e));
          }
        },
      }, 'Revoke') },
    ], keys.data, 'API keys'));
  }
  const err = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'stack' },
    field('Key name', { name: 'name', required: true }),
    roleBoxes(roles.data, 'Key roles'),
    h('button', { type: 'submit' }, 'Create key'), err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    const f = new FormData(form);
    try {
      const k = await post(`${base(slug)}/api-keys`, { name: f.get('name'), roles: f.getAll('roles') });
      form.reset();
      shown.replaceChildren(h('p', { role: 'alert' }, 'Copy this key now: it is not shown again.'), h('p', { class: 'secret', id: 'api-key-secret' }, k.secret));
      await load();
    } catch (e) {
      err.textContent = errorText(e);
    }
  });
  render('API keys', list, h('h2', {}, 'Create a key'), form, shown);
  await load();
}

export async function webhooksPage({ slug }) {
  const list = h('div', { 'aria-live': 'polite' });
  const shown = h('div', {});
  const log = h('section', { 'aria-live': 'polite' });
  async function load() {
    const hooks = await get(`${base(slug)}/webhooks`);
    list.replaceChildren(table([
      { title: 'URL', cell: (w) => h('code', {}, w.url) },
      { title: 'Events', cell: (w) => (w.event_types || []).join(', ') },
      { title: 'Active', cell: (w) => (w.active ? 'yes' : 'no') },
      { title: 'Actions', class: 'actions', cell: (w) => [
        h('button', { type: 'button', class: 'secondary', 'aria-label': `Deliveries of ${w.url}`, onclick: () => deliveries(w).catch((e) => flash(errorText(e))) }, 'Deliveries'),
        h('button', {
          type: 'button', class: 'danger', 'aria-label': `Delete ${w.url}`,
          onclick: async () => {
            if (!(await confirmDialog(`Delete the endpoint ${w.url}?`, 'Delete'))) return;
            try {
              await del(`${base(slug)}/webhooks/${w.id}`);
              flash('Endpoint deleted.');
              await load();
            } catch (e) {
              flash(errorText(e));
            }
          },
        }, 'Delete')] },
    ], hooks.data, 'Webhook endpoints'));
  }
  async function deliveries(w, cursor) {
    const page = await get(`${base(slug)}/webhooks/${w.id}/deliveries${qs({ cursor })}`);
    log.replaceChildren(h('h2', { tabindex: '-1' }, `Deliveries to ${w.url}`), table([
      { title: 'Event', cell: (d) => d.event_type },
      { title: 'Status', cell: (d) => d.status },
      { title: 'Attempts', cell: (d) => String(d.attempts) },
      { title: 'Last answer', cell: (d) => (d.last_status_code ? String(d.last_status_code) : '') },
      { title: 'Event id', cell: (d) => h('code', {}, d.event_id) },
    ], page.data, 'Deliveries'), page.next_cursor ? h('button', { type: 'button', class: 'secondary', onclick: () => deliveries(w, page.next_cursor) }, 'Next page') : '');
    log.querySelector('h2').focus();
  }
  const err = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'stack' },
    field('Endpoint URL', { type: 'url', name: 'url', required: true }),
    field('Event types (comma-separated; * for all)', { name: 'event_types', value: '*', required: true }),
    field('Description', { name: 'description' }),
    h('button', { type: 'submit' }, 'Add endpoint'), err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    const f = new FormData(form);
    const body = { url: f.get('url'), event_types: f.get('event_types').split(',').map((s) => s.trim()).filter(Boolean) };
    if (f.get('description')) body.description = f.get('description');
    try {
      const w = await post(`${base(slug)}/webhooks`, body, { idempotent: true });
      form.reset();
      shown.replaceChildren(h('p', { role: 'alert' }, 'Signing secret (shown this once): '), h('p', { class: 'secret' }, w.secret || ''));
      await load();
    } catch (e) {
      err.textContent = errorText(e);
    }
  });
  render('Webhooks', list, log, h('h2', {}, 'Add an endpoint'), form, shown);
  await load();
}
