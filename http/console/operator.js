// The operator's pages: login (password + TOTP, enrolment on first login), tenants (search,
// status filter, create with provisioning progress, suspend / resume / archive), shards, dead
// letters with replay, and the platform audit trail with paging. Also the login and enrolment
// forms the tenant side reuses.

import { h, field, select, table, badge, when, flash, errorText, confirmDialog, render } from './ui.js';
import { ApiError, get, post, qs } from './api.js';

/** Login form for `base` (`/v1/platform` or `/v1/tenants/<slug>`); `next` is the hash to go to. */
export function loginForm(title, base, next, enrolHash) {
  const err = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'stack', 'aria-describedby': 'login-help' },
    field('E-mail', { type: 'email', name: 'email', autocomplete: 'username', required: true }),
    field('Password', { type: 'password', name: 'password', autocomplete: 'current-password', required: true }),
    field('Authenticator code', { name: 'totp_code', inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}' }),
    field('Or a recovery code', { name: 'recovery_code', autocomplete: 'off' }),
    h('button', { type: 'submit' }, 'Log in'),
    err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    const f = new FormData(form);
    const body = { email: f.get('email'), password: f.get('password') };
    if (f.get('totp_code')) body.totp_code = f.get('totp_code').trim();
    if (f.get('recovery_code')) body.recovery_code = f.get('recovery_code').trim();
    try {
      const session = await post(`${base}/sessions`, body);
      flash('');
      enrolDue = !session.mfa;
      location.hash = session.mfa ? next : enrolHash;
    } catch (e) {
      err.textContent = errorText(e);
    }
  });
  render(title,
    h('p', { id: 'login-help' }, 'Enter the code your authenticator app shows. On your first login leave it empty: you will enrol one next.'),
    form);
}

/** Set when a login (or the API) says the session still has to enrol its second factor. */
let enrolDue = false;

/** The API answered `mfa_required`: the enrolment page may start at once. */
export function markEnrolDue() {
  enrolDue = true;
}

/**
 * TOTP enrolment: shows the secret, confirms a code, shows the recovery codes once. Starting it
 * replaces any enrolled key, so it starts by itself only right after a login that needs it;
 * otherwise it asks first.
 */
export async function enrolForm(base, next) {
  if (!enrolDue) {
    const start = h('button', { type: 'button', class: 'danger' }, 'Replace my authenticator key');
    start.addEventListener('click', () => {
      enrolDue = true;
      enrolForm(base, next).catch((e) => flash(errorText(e)));
    });
    render('Authenticator', h('p', {}, 'Enrolling again replaces the key your authenticator app uses now; the old codes stop working once you confirm.'), start);
    return;
  }
  enrolDue = false;
  const enrolment = await post(`${base}/mfa/totp`);
  const err = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'stack' },
    field('Code from your authenticator app', { name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', required: true, pattern: '[0-9]{6}' }),
    h('button', { type: 'submit' }, 'Confirm'),
    err);
  const done = h('div', {});
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    try {
      const res = await post(`${base}/mfa/totp/confirm`, { code: new FormData(form).get('code').trim() });
      form.remove();
      done.replaceChildren(
        h('h2', {}, 'Recovery codes'),
        h('p', {}, 'Each works once instead of a code. Store them now: they are not shown again.'),
        h('pre', { class: 'secret', id: 'recovery-codes' }, res.recovery_codes.join('\n')),
        h('a', { href: next, class: 'continue' }, 'Continue'));
      done.querySelector('a').focus();
    } catch (e) {
      err.textContent = errorText(e);
    }
  });
  render('Set up your authenticator',
    h('p', {}, 'Add this account to an authenticator app (RFC 6238, 6 digits, 30 s) with the key below, then enter the code it shows.'),
    h('p', {}, 'Key: ', h('code', { class: 'secret', id: 'totp-secret' }, enrolment.secret)),
    h('p', {}, 'Or the URI: ', h('code', { id: 'totp-uri' }, enrolment.otpauth_uri)),
    form, done);
}

export function loginPage() {
  loginForm('Operator login', '/v1/platform', '#/tenants', '#/enrol');
}

export function enrolPage() {
  return enrolForm('/v1/platform', '#/tenants');
}

const STATUSES = [['', 'Any status'], ['provisioning', 'Provisioning'], ['active', 'Active'], ['suspended', 'Suspended'], ['archived', 'Archived']];

export async function tenantsPage() {
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const filter = { q: params.get('q') || '', status: params.get('status') || '' };
  const list = h('div', { id: 'tenant-list', 'aria-live': 'polite' });
  const cursors = [];

  async function load(cursor) {
    const page = await get(`/v1/platform/tenants${qs({ ...filter, cursor, limit: 50 })}`);
    const rows = table([
      { title: 'Slug', cell: (t) => h('a', { href: `#/t/${t.slug}/login` }, t.slug) },
      { title: 'Name', cell: (t) => t.name },
      { title: 'Status', cell: (t) => badge('status', t.status) },
      { title: 'Plan', cell: (t) => t.plan },
      { title: 'Shard', cell: (t) => t.shard || '' },
      { title: 'Created', cell: (t) => when(t.created_at) },
      { title: 'Actions', class: 'actions', cell: (t) => actions(t) },
    ], page.data, 'Tenants');
    const pager = h('div', { class: 'pager' },
      cursors.length ? h('button', { type: 'button', class: 'secondary', onclick: () => load(cursors.pop() || undefined).catch(fail) }, 'Previous page') : null,
      page.next_cursor ? h('button', { type: 'button', class: 'secondary', onclick: () => { cursors.push(cursor || ''); load(page.next_cursor).catch(fail); } }, 'Next page') : null);
    list.replaceChildren(rows, pager);
  }

  function fail(e) {
    list.replaceChildren(h('p', { class: 'error', role: 'alert' }, errorText(e)));
  }

  function action(t, verb, label, cls) {
    return h('button', {
      type: 'button', class: cls, 'data-action': verb, 'aria-label': `${label} ${t.slug}`,
      onclick: async () => {
        if (!(await confirmDialog(`${label} tenant “${t.name}” (${t.slug})?`, label))) return;
        try {
          const after = await post(`/v1/platform/tenants/${t.slug}/${verb}`);
          flash(`Tenant ${t.slug} is now ${after.status}.`);
          await load();
        } catch (e) {
          flash(errorText(e));
        }
      },
    }, label);
  }

  function actions(t) {
    const out = [];
    if (t.status === 'active') out.push(action(t, 'suspend', 'Suspend', 'secondary'));
    if (t.status === 'suspended') out.push(action(t, 'resume', 'Resume', 'secondary'));
    if (t.status !== 'archived' && t.status !== 'provisioning') out.push(action(t, 'archive', 'Archive', 'danger'));
    return out;
  }

  const search = h('form', { class: 'inline', role: 'search' },
    field('Search', { type: 'search', name: 'q', value: filter.q, placeholder: 'slug or name' }),
    select('Status', 'status', STATUSES, filter.status),
    h('button', { type: 'submit' }, 'Filter'));
  search.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = new FormData(search);
    filter.q = f.get('q');
    filter.status = f.get('status');
    cursors.length = 0;
    load().catch(fail);
  });

  const progress = h('ol', { class: 'progress', id: 'provisioning', 'aria-live': 'polite' });
  const createErr = h('p', { class: 'error', role: 'alert' });
  const create = h('form', { class: 'stack', id: 'create-tenant' },
    field('Slug', { name: 'slug', required: true, pattern: '[a-z][a-z0-9-]{2,62}', 'aria-describedby': 'slug-help' }),
    h('small', { id: 'slug-help' }, 'Lower-case letters, digits and dashes; 3 to 63 characters; never changes.'),
    field('Name', { name: 'name', required: true }),
    select('Plan', 'plan', [['starter', 'Starter'], ['standard', 'Standard'], ['enterprise', 'Enterprise']], 'starter'),
    h('button', { type: 'submit' }, 'Create tenant'),
    createErr);
  create.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    createErr.textContent = '';
    const f = new FormData(create);
    const body = { slug: f.get('slug').trim(), name: f.get('name').trim(), plan: f.get('plan') };
    await provision(body, progress, createErr);
    load().catch(fail);
  });

  render('Tenants', search, list, h('h2', {}, 'Create a tenant'), create, progress);
  await load();
}

/** Creates a tenant and shows each state it goes through until `active` (polling its status). */
async function provision(body, progress, errEl) {
  progress.replaceChildren();
  let last = null;
  const step = (text, status) => {
    if (text === last) return;
    last = text;
    progress.append(h('li', { dataset: { status: status || '' } }, text));
  };
  step('requested', 'requested');
  let finished = false;
  const poll = async () => {
    while (!finished) {
      try {
        const t = await get(`/v1/platform/tenants/${encodeURIComponent(body.slug)}`);
        step(t.status, t.status);
        if (t.status === 'active') return;
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 404)) throw e;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  const polling = poll().catch(() => {});
  try {
    const t = await post('/v1/platform/tenants', body, { idempotent: true });
    step(t.status, t.status);
    while (last !== 'active') {
      const now = await get(`/v1/platform/tenants/${encodeURIComponent(body.slug)}`);
      step(now.status, now.status);
      if (now.status !== 'active') await new Promise((r) => setTimeout(r, 250));
    }
    progress.append(h('li', {}, h('a', { href: `#/t/${body.slug}/login` }, `Open ${body.slug}’s console`)));
  } catch (e) {
    errEl.textContent = errorText(e);
  } finally {
    finished = true;
    await polling;
  }
}

export async function shardsPage() {
  const shards = await get('/v1/platform/shards');
  render('Shards', table([
    { title: 'Name', cell: (s) => s.name },
    { title: 'Status', cell: (s) => s.status },
    { title: 'Health', cell: (s) => badge('health', s.health) },
    { title: 'Breaker', cell: (s) => s.breaker || '' },
    { title: 'Tenants', cell: (s) => String(s.tenant_count) },
    { title: 'Weight', cell: (s) => String(s.weight) },
    { title: 'Location', cell: (s) => h('code', {}, s.dsn) },
    { title: 'Error', cell: (s) => s.error || '' },
  ], shards.data || shards, 'Shards'));
}

export async function deadLettersPage() {
  const list = h('div', { 'aria-live': 'polite' });
  const filter = { status: 'dead' };
  const cursors = [];
  async function load(cursor) {
    const page = await get(`/v1/platform/dead-letters${qs({ ...filter, cursor })}`);
    list.replaceChildren(table([
      { title: 'Last dead', cell: (d) => when(d.last_dead_at) },
      { title: 'Queue', cell: (d) => d.queue },
      { title: 'Event', cell: (d) => d.event_type || d.routing_key },
      { title: 'Tenant', cell: (d) => d.tenant || '' },
      { title: 'Error', cell: (d) => d.error },
      { title: 'Attempts', cell: (d) => `${d.attempts} (${d.deaths} deaths)` },
      { title: 'Status', cell: (d) => d.status },
      { title: 'Actions', class: 'actions', cell: (d) => (d.status === 'dead' ? h('button', {
        type: 'button', 'aria-label': `Replay ${d.event_type || d.id}`,
        onclick: async () => {
          if (!(await confirmDialog(`Replay ${d.event_type || 'this message'} to ${d.queue}?`, 'Replay'))) return;
          try {
            await post(`/v1/platform/dead-letters/${d.id}/replay`);
            flash('Replayed.');
            await load(cursor);
          } catch (e) {
            flash(errorText(e));
          }
        },
      }, 'Replay') : '') },
    ], page.data, 'Dead letters'), h('div', { class: 'pager' },
      cursors.length ? h('button', { type: 'button', class: 'secondary', onclick: () => load(cursors.pop() || undefined) }, 'Previous page') : null,
      page.next_cursor ? h('button', { type: 'button', class: 'secondary', onclick: () => { cursors.push(cursor || ''); load(page.next_cursor); } }, 'Next page') : null));
  }
  const form = h('form', { class: 'inline' },
    select('Show', 'status', [['dead', 'Dead'], ['replayed', 'Replayed'], ['', 'All']], 'dead'),
    field('Tenant', { name: 'tenant' }),
    h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    filter.status = f.get('status');
    filter.tenant = f.get('tenant');
    cursors.length = 0;
    load().catch((e) => flash(errorText(e)));
  });
  render('Dead letters', form, list);
  await load();
}

export async function auditPage() {
  const list = h('div', { 'aria-live': 'polite' });
  const filter = {};
  const cursors = [];
  async function load(cursor) {
    const page = await get(`/v1/platform/audit${qs({ limit: 25, ...filter, cursor })}`);
    list.replaceChildren(table([
      { title: '#', cell: (a) => String(a.seq) },
      { title: 'When', cell: (a) => when(a.occurred_at) },
      { title: 'Actor', cell: (a) => a.actor },
      { title: 'Action', cell: (a) => a.action },
      { title: 'Target', cell: (a) => `${a.target_type} ${a.target_id}` },
      { title: 'Source', cell: (a) => a.source_ip || '' },
    ], page.data, 'Audit events'), h('div', { class: 'pager' },
      cursors.length ? h('button', { type: 'button', class: 'secondary', onclick: () => load(cursors.pop() || undefined) }, 'Previous page') : null,
      page.next_cursor ? h('button', { type: 'button', class: 'secondary', id: 'audit-next', onclick: () => { cursors.push(cursor || ''); load(page.next_cursor); } }, 'Next page') : null));
  }
  const form = h('form', { class: 'inline' },
    field('Action', { name: 'action', placeholder: 'tenant.created' }),
    field('Tenant', { name: 'tenant' }),
    field('Actor', { name: 'actor' }),
    select('Rows per page', 'limit', [['25', '25'], ['5', '5'], ['100', '100']], '25'),
    h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    for (const k of ['action', 'tenant', 'actor', 'limit']) filter[k] = f.get(k);
    cursors.length = 0;
    load().catch((e) => flash(errorText(e)));
  });
  render('Audit trail', form, list);
  await load();
}
