// The console's entry: a hash router (`#/tenants`, `#/t/<slug>/dashboard`…), the navigation bar,
// and what happens when the API says the session is missing (login) or lacks its second factor
// (enrolment).

import { h, flash, render } from './ui.js';
import { ApiError, post } from './api.js';
import * as operator from './operator.js';
import * as tenant from './tenant.js';
import * as dashboard from './dashboard.js';
import * as moves from './moves.js';

const operatorPages = {
  login: operator.loginPage,
  enrol: operator.enrolPage,
  tenants: operator.tenantsPage,
  shards: operator.shardsPage,
  'dead-letters': operator.deadLettersPage,
  audit: operator.auditPage,
  moves: moves.movesPage,
};

const tenantPages = {
  login: tenant.loginPage,
  enrol: tenant.enrolPage,
  dashboard: dashboard.dashboardPage,
  users: tenant.usersPage,
  'api-keys': tenant.apiKeysPage,
  webhooks: tenant.webhooksPage,
};

let leave = null; // the current page's clean-up (the dashboard closes its socket)

function link(href, text, current) {
  return h('a', { href, 'aria-current': current ? 'page' : null }, text);
}

function setNav(route) {
  const nav = document.getElementById('nav');
  if (route.slug) {
    const base = `#/t/${route.slug}`;
    nav.replaceChildren(
      link(`${base}/dashboard`, 'Dashboard', route.page === 'dashboard'),
      link(`${base}/users`, 'Users and roles', route.page === 'users'),
      link(`${base}/api-keys`, 'API keys', route.page === 'api-keys'),
      link(`${base}/webhooks`, 'Webhooks', route.page === 'webhooks'),
      h('button', { type: 'button', onclick: () => logout(`/v1/tenants/${route.slug}/sessions/logout`, `${base}/login`) }, 'Log out'),
    );
  } else {
    nav.replaceChildren(
      link('#/tenants', 'Tenants', route.page === 'tenants'),
      link('#/shards', 'Shards', route.page === 'shards'),
      link('#/moves', 'Moves', route.page === 'moves'),
      link('#/dead-letters', 'Dead letters', route.page === 'dead-letters'),
      link('#/audit', 'Audit', route.page === 'audit'),
      h('button', { type: 'button', onclick: () => logout('/v1/platform/sessions/logout', '#/login') }, 'Log out'),
    );
  }
}

async function logout(path, to) {
  try {
    await post(path);
  } catch {
    // Already gone: the login page is where we go anyway.
  }
  flash('Logged out.');
  location.hash = to;
}

export function parseRoute(hash) {
  const parts = hash.replace(/^#\/?/, '').split('?')[0].split('/').filter(Boolean);
  if (parts[0] === 't' && parts[1]) return { slug: decodeURIComponent(parts[1]), page: parts[2] || 'dashboard' };
  return { slug: null, page: parts[0] || 'tenants' };
}

async function route() {
  if (leave) {
    leave();
    leave = null;
  }
  const r = parseRoute(location.hash);
  setNav(r);
  const pages = r.slug ? tenantPages : operatorPages;
  const page = pages[r.page];
  if (!page) {
    render('Not found', h('p', {}, 'No such page. '), h('a', { href: '#/tenants' }, 'Go to tenants'));
    return;
  }
  try {
    leave = (await page(r)) || null;
  } catch (e) {
    const login = r.slug ? `#/t/${r.slug}/login` : '#/login';
    if (e instanceof ApiError && e.status === 401 && r.page !== 'login') {
      flash('Please log in.');
      location.hash = login;
    } else if (e instanceof ApiError && e.code === 'mfa_required') {
      flash('Your account must enrol a second factor first.');
      operator.markEnrolDue();
      (r.slug ? tenant.enrolPage : operator.enrolPage)(r);
    } else {
      render('Something went wrong', h('p', { class: 'error', role: 'alert' }, e.message || String(e)));
    }
  }
}

window.addEventListener('hashchange', route);
route();
