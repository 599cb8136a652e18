// The operator's console in Chromium: first login enrols TOTP from the key the page shows, a
// second login uses a TOTP code, then a tenant is created and seen to become active, searched,
// filtered, suspended and resumed through confirmations, and the shards, dead letters and audit
// pages render. Keyboard only for the main flows. Usage: node operator.mjs BASE EMAIL PASSWORD SLUG

import { run, waitFor, totp, checkLabels, screenshot, typeInto, assert } from './lib.mjs';

const [base, email, password, slug] = process.argv.slice(2);
if (!slug) {
  console.error('usage: node operator.mjs BASE EMAIL PASSWORD SLUG');
  process.exit(2);
}

async function login(page, code) {
  await page.waitForSelector('h1:text("Operator login")');
  await checkLabels(page, 'login');
  await typeInto(page, 'E-mail', email);
  await page.keyboard.press('Tab');
  await page.keyboard.type(password);
  if (code) {
    await page.keyboard.press('Tab');
    await page.keyboard.type(code);
  }
  await page.keyboard.press('Enter');
}

await run('operator', async ({ page }) => {
  await page.goto(`${base}/console/`);
  // No session: the console sends us to the login page.
  await page.waitForURL(/#\/login$/);
  await login(page, null);

  // First login: enrol the authenticator from the key the page shows.
  await page.waitForSelector('#totp-secret');
  await checkLabels(page, 'enrolment');
  const secret = (await page.textContent('#totp-secret')).trim();
  const now = Date.now() / 1000;
  await typeInto(page, 'Code from your authenticator app', totp(secret, now));
  await page.keyboard.press('Enter');
  await page.waitForSelector('#recovery-codes');
  const codes = (await page.textContent('#recovery-codes')).trim().split('\n');
  assert(codes.length === 10, `ten recovery codes, got ${codes.length}`);
  // Focus moved to Continue: Enter follows it.
  await page.keyboard.press('Enter');
  await page.waitForSelector('h1:text("Tenants")');

  // Log out, and in again with a TOTP code (the next step: a used code is refused).
  await page.getByRole('button', { name: 'Log out' }).focus();
  await page.keyboard.press('Enter');
  await page.waitForURL(/#\/login$/);
  await login(page, totp(secret, now + 30));
  await page.waitForSelector('h1:text("Tenants")');
  // Visiting the enrolment page later does not replace the key by itself.
  await page.goto(`${base}/console/#/enrol`);
  await page.waitForSelector('button:text("Replace my authenticator key")');
  assert(!(await page.$('#totp-secret')), 'a new key was issued without asking');
  await page.goto(`${base}/console/#/tenants`);
  await page.waitForSelector('h1:text("Tenants")');
  await checkLabels(page, 'tenants');

  // Create a tenant and watch it become active.
  await typeInto(page, 'Slug', slug);
  await page.keyboard.press('Tab');
  await page.keyboard.type('E2E Clinic');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#provisioning li[data-status="active"]', { timeout: 30000 });
  const steps = await page.$$eval('#provisioning li[data-status]', (l) => l.map((x) => x.dataset.status));
  assert(steps[0] === 'requested' && steps[steps.length - 1] === 'active', `provisioning steps ${steps}`);
  console.log(`provisioning ${steps.join(' -> ')}`);
  await page.waitForSelector(`#tenant-list a:text("${slug}")`);
  await screenshot(page, 'operator-tenant-created');

  // Search and status filter.
  await typeInto(page, 'Search', slug);
  await page.keyboard.press('Enter');
  await waitFor(page, (s) => {
    const rows = [...document.querySelectorAll('#tenant-list tbody tr')];
    return rows.length === 1 && rows[0].textContent.includes(s);
  }, slug);
  await page.getByLabel('Status', { exact: true }).selectOption('suspended');
  await page.getByRole('button', { name: 'Filter' }).press('Enter');
  await page.waitForSelector('#tenant-list td:text("Nothing to show.")');
  await page.getByLabel('Status', { exact: true }).selectOption('');
  await page.getByRole('button', { name: 'Filter' }).press('Enter');
  await page.waitForSelector(`#tenant-list a:text("${slug}")`);

  // Suspend, with the confirmation answered by keyboard (focus starts on Cancel).
  await page.getByRole('button', { name: `Suspend ${slug}` }).press('Enter');
  await page.waitForSelector('dialog[open]');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#tenant-list .badge.status-suspended');
  await screenshot(page, 'operator-tenant-suspended');
  // Cancelling changes nothing.
  await page.getByRole('button', { name: `Resume ${slug}` }).press('Enter');
  await page.waitForSelector('dialog[open]');
  await page.keyboard.press('Escape');
  await page.waitForSelector('dialog', { state: 'detached' });
  assert(await page.$('#tenant-list .badge.status-suspended'), 'still suspended after cancel');
  await page.getByRole('button', { name: `Resume ${slug}` }).press('Enter');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#tenant-list .badge.status-active');

  // Shards with health and tenant counts.
  await page.getByRole('link', { name: 'Shards' }).press('Enter');
  await page.waitForSelector('h1:text("Shards")');
  await page.waitForSelector('td:text("shard-0")');
  const healthy = await page.$$eval('.badge.health-up', (l) => l.length);
  assert(healthy >= 2, `both shards up, ${healthy} shown`);
  await screenshot(page, 'operator-shards');

  // Dead letters and the audit trail.
  await page.getByRole('link', { name: 'Dead letters' }).press('Enter');
  await page.waitForSelector('h1:text("Dead letters")');
  await page.waitForSelector('main td:text("receiver answered 500")');
  await checkLabels(page, 'dead letters');
  await page.getByRole('button', { name: 'Replay order.approved' }).press('Enter');
  await page.waitForSelector('dialog[open]');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#flash:text("Replayed.")');
  await page.waitForSelector('main td:text("receiver answered 500")', { state: 'detached' });
  await page.getByLabel('Show', { exact: true }).selectOption('replayed');
  await page.getByRole('button', { name: 'Filter' }).press('Enter');
  await page.waitForSelector('main td:text("receiver answered 500")');
  await screenshot(page, 'operator-dead-letters');
  await page.getByRole('link', { name: 'Audit' }).press('Enter');
  await page.waitForSelector('h1:text("Audit trail")');
  await checkLabels(page, 'audit');
  await typeInto(page, 'Action', 'tenant.created');
  await page.keyboard.press('Enter');
  await page.waitForSelector('main td:text("tenant.created")');
  await screenshot(page, 'operator-audit');
  // Paging: five rows a page, forward and back.
  await page.getByLabel('Action', { exact: true }).fill('');
  await page.getByLabel('Rows per page', { exact: true }).selectOption('5');
  await page.getByRole('button', { name: 'Filter' }).press('Enter');
  const seqs = () => page.$$eval('main tbody tr td:first-child', (l) => l.map((x) => x.textContent).join(','));
  await page.waitForSelector('#audit-next');
  await waitFor(page, () => document.querySelectorAll('main tbody tr').length === 5);
  const first = await seqs();
  await page.locator('#audit-next').press('Enter');
  await waitFor(page, (f) => [...document.querySelectorAll('main tbody tr td:first-child')].map((x) => x.textContent).join(',') !== f, first);
  const second = await seqs();
  assert(second.split(',').every((s) => !first.split(',').includes(s)), `page 2 ${second} repeats page 1 ${first}`);
  await page.getByRole('button', { name: 'Previous page' }).press('Enter');
  await waitFor(page, (f) => [...document.querySelectorAll('main tbody tr td:first-child')].map((x) => x.textContent).join(',') === f, first);
});
