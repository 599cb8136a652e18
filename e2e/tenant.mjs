// A tenant user's console in Chromium: first login enrols TOTP, then the live dashboard, users,
// API keys (secret shown once, revoke) and webhooks (create, delivery log, delete).
// Dashboard, mode `live`: KPI tiles from the WebSocket snapshot; an order created through the API
// moves "Orders today"; the socket is dropped, another order is created meanwhile, and the page
// reconnects with `after=<last seq>` and shows it, with consecutive sequence numbers and no
// duplicate. Mode `nolive` (the server has no /live route): the page renders and says live updates
// are unavailable.
// Usage: node tenant.mjs BASE SLUG EMAIL PASSWORD API_KEY ORDER_JSON live|nolive

import { run, waitFor, totp, checkLabels, screenshot, typeInto, assert } from './lib.mjs';

const [base, slug, email, password, apiKey, orderJson, mode] = process.argv.slice(2);
if (!mode) {
  console.error('usage: node tenant.mjs BASE SLUG EMAIL PASSWORD API_KEY ORDER_JSON live|nolive');
  process.exit(2);
}

/** Creates an order through the API (not the browser), as another client of the tenant would. */
async function createOrder() {
  const res = await fetch(`${base}/v1/tenants/${slug}/orders`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' },
    body: orderJson,
  });
  const text = await res.text();
  assert(res.status === 201, `order: ${res.status} ${text}`);
  return JSON.parse(text);
}

const kpi = (page, k) => page.textContent(`#kpi-${k}`);

await run(`tenant-${slug}`, async ({ page }) => {
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));

  await page.goto(`${base}/console/#/t/${slug}/dashboard`);
  await page.waitForURL(new RegExp(`#/t/${slug}/login$`));
  await page.waitForSelector(`h1:text("Log in to ${slug}")`);
  await checkLabels(page, 'tenant login');
  await typeInto(page, 'E-mail', email);
  await page.keyboard.press('Tab');
  await page.keyboard.type(password);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#totp-secret');
  const secret = (await page.textContent('#totp-secret')).trim();
  await typeInto(page, 'Code from your authenticator app', totp(secret));
  await page.keyboard.press('Enter');
  await page.waitForSelector('#recovery-codes');
  await page.keyboard.press('Enter');
  await page.waitForSelector(`h1:text("${slug} dashboard")`);
  await page.waitForSelector('#chart-events svg');
  await page.waitForSelector('#chart-counters svg');

  if (mode === 'live') {
    await page.waitForSelector('#conn-state[data-state="live"]');
    await waitFor(page, () => window.ariesLive && window.ariesLive.state.seq !== null);
    const before = Number(await kpi(page, 'orders_today'));
    assert(Number.isFinite(before), `orders_today tile shows ${await kpi(page, 'orders_today')}`);
    await createOrder();
    await waitFor(page, (n) => document.querySelector('#kpi-orders_today').textContent === String(n), before + 1, 15000);
    await page.waitForSelector('#activity li[data-type^="order."]');
    await screenshot(page, `tenant-${slug}-dashboard-live`);

    // Drop the socket; an order created meanwhile arrives after the reconnection.
    const seqAtDrop = await page.evaluate(() => window.ariesLive.state.seq);
    await page.evaluate(() => window.ariesLive.drop());
    await createOrder();
    await waitFor(page, (n) => document.querySelector('#kpi-orders_today').textContent === String(n), before + 2, 20000);
    await page.waitForSelector('#conn-state[data-state="live"]');
    const resumed = sockets.slice(1);
    assert(resumed.some((u) => u.includes(`after=${seqAtDrop}`)), `reconnected with after=${seqAtDrop}: ${sockets.join(', ')}`);
    const seen = await page.evaluate(() => window.ariesLive.state.seen);
    // Every event applied follows the last one (or the snapshot it started from): no gap, no duplicate.
    let expected = null;
    for (const s of seen) {
      if (typeof s === 'string') expected = Number(s.split(':')[1]) + 1;
      else {
        assert(s === expected, `sequence gap or duplicate at ${s}: ${seen}`);
        expected += 1;
      }
    }
    assert(seen.filter((s) => typeof s === 'number').length >= 2, `both orders' events applied: ${seen}`);
    console.log(`live: seqs ${seen.join(',')}`);
    await screenshot(page, `tenant-${slug}-dashboard-reconnected`);
  } else {
    await page.waitForSelector('#conn-state[data-state="unavailable"]', 15000);
    const text = await page.textContent('#conn-state');
    assert(/Live updates unavailable/.test(text), `connection state says ${text}`);
    await screenshot(page, `tenant-${slug}-dashboard-unavailable`);
  }

  // Users and roles: add a user by keyboard.
  await page.getByRole('link', { name: 'Users and roles' }).press('Enter');
  await page.waitForSelector('h1:text("Users and roles")');
  await checkLabels(page, 'users');
  await typeInto(page, 'E-mail', 'clerk@e2e.test');
  await page.keyboard.press('Tab');
  await page.keyboard.type('Clerk');
  await page.keyboard.press('Tab');
  await page.keyboard.type('a long enough passphrase');
  await page.getByLabel('viewer', { exact: true }).check();
  await page.getByRole('button', { name: 'Add user' }).press('Enter');
  await page.waitForSelector('td:text("clerk@e2e.test")');
  await screenshot(page, `tenant-${slug}-users`);

  // API keys: the secret is shown once; revoke with confirmation.
  await page.getByRole('link', { name: 'API keys' }).press('Enter');
  await page.waitForSelector('h1:text("API keys")');
  await checkLabels(page, 'api keys');
  await typeInto(page, 'Key name', 'e2e integration');
  await page.getByLabel('viewer', { exact: true }).check();
  await page.getByRole('button', { name: 'Create key' }).press('Enter');
  await page.waitForSelector('#api-key-secret');
  const keySecret = (await page.textContent('#api-key-secret')).trim();
  assert(keySecret.startsWith(`ak_${slug}.`), `secret ${keySecret}`);
  await page.waitForSelector('td:text("e2e integration")');
  await page.getByRole('button', { name: 'Revoke e2e integration' }).press('Enter');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.waitForSelector('tr:has(td:text("e2e integration")) .badge:text("revoked")');
  assert(!(await page.$('button[aria-label="Revoke e2e integration"]')), 'a revoked key offers no revoke');
  // Revocation reaches every instance within the credential cache's delay (500 ms).
  let status = 0;
  for (let i = 0; i < 20 && status !== 401; i++) {
    if (i) await new Promise((r) => setTimeout(r, 200));
    status = (await fetch(`${base}/v1/tenants/${slug}/locations`, { headers: { Authorization: `Bearer ${keySecret}` } })).status;
  }
  assert(status === 401, `revoked key answered ${status}`);

  // Webhooks: create, delivery log, delete.
  await page.getByRole('link', { name: 'Webhooks' }).press('Enter');
  await page.waitForSelector('h1:text("Webhooks")');
  await checkLabels(page, 'webhooks');
  await typeInto(page, 'Endpoint URL', 'https://hooks.example.test/aries');
  await page.getByRole('button', { name: 'Add endpoint' }).press('Enter');
  await page.waitForSelector('td code:text("https://hooks.example.test/aries")');
  await page.getByRole('button', { name: 'Deliveries of https://hooks.example.test/aries' }).press('Enter');
  await page.waitForSelector('h2:text("Deliveries to https://hooks.example.test/aries")');
  await screenshot(page, `tenant-${slug}-webhooks`);
  await page.getByRole('button', { name: 'Delete https://hooks.example.test/aries' }).press('Enter');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.waitForSelector('td code:text("https://hooks.example.test/aries")', { state: 'detached' });
});
