// The dashboard's side of the live protocol, against a scripted server (playwright's
// routeWebSocket stands in for /v1/tenants/<t>/live, and a route for …/dashboard), so the page's
// sequence handling is checked whatever the server build: snapshot then events; a duplicate is
// ignored; a dropped socket reconnects with after=<last seq> and applies exactly what it missed; a
// gap makes it resume from its last sequence; heartbeats keep it "live"; tiles, charts and activity
// follow. Usage: node dashboard-protocol.mjs BASE

import { run, waitFor, screenshot, assert } from './lib.mjs';

const [base] = process.argv.slice(2);
const slug = 'mock-dme';
const kpis = (orders) => ({
  orders_today: orders, active_rentals: 7, deliveries_due: 2, pickups_due: 1,
  billed_this_month: '1234.50', open_ar: '980.00', stock_at_reorder_point: 3,
  counters: { 'order.created': orders, 'patient.created': 2 },
});
const event = (seq, orders) => ({
  type: 'event', seq,
  event: { id: `e${seq}`, type: 'order.created', occurred_at: new Date().toISOString(), summary: `Order O00000${seq}` },
  kpis: kpis(orders),
});

const tile = (page) => page.textContent('#kpi-orders_today');
const waitTile = (page, n) => waitFor(page, (v) => document.querySelector('#kpi-orders_today').textContent === String(v), n);

await run('dashboard-protocol', async ({ page }) => {
  await page.route(`**/v1/tenants/${slug}/dashboard`, (route) => route.fulfill({
    status: 200, contentType: 'application/json', body: JSON.stringify({ type: 'snapshot', seq: 10, kpis: kpis(3), recent: [] }),
  }));
  const urls = [];
  const sockets = [];
  await page.routeWebSocket(new RegExp(`/v1/tenants/${slug}/live`), (ws) => {
    urls.push(ws.url());
    sockets.push(ws);
  });
  await page.goto(`${base}/console/#/t/${slug}/dashboard`);
  await page.waitForSelector(`h1:text("${slug} dashboard")`);
  // The REST snapshot fills the tiles before the socket says anything.
  await waitTile(page, 3);
  await waitFor(page, () => document.querySelector('#conn-state').dataset.state === 'live');
  assert(!new URL(urls[0]).searchParams.has('after'), `first connection resumes nothing: ${urls[0]}`);

  const first = sockets[0];
  first.send(JSON.stringify({ type: 'snapshot', seq: 10, kpis: kpis(3), recent: [event(9, 3).event] }));
  first.send(JSON.stringify(event(11, 4)));
  first.send(JSON.stringify(event(11, 99))); // a duplicate: ignored
  await waitTile(page, 4);
  first.send(JSON.stringify({ type: 'heartbeat', seq: 11 }));
  assert((await tile(page)) === '4', 'the duplicate was applied');

  // The connection drops; the page comes back with after=11 and gets 12 and 13.
  first.close();
  for (let i = 0; i < 100 && urls.length < 2; i++) await new Promise((r) => setTimeout(r, 100));
  await page.waitForSelector('#conn-state[data-state="live"]');
  assert(urls.length === 2 && new URL(urls[1]).searchParams.get('after') === '11', `resume URL: ${urls}`);
  const second = sockets[1];
  second.send(JSON.stringify(event(12, 5)));
  second.send(JSON.stringify(event(13, 6)));
  await waitTile(page, 6);
  // A gap (15 after 13): the page resumes from 13 rather than skip 14.
  second.send(JSON.stringify(event(15, 8)));
  await waitFor(page, () => document.querySelector('#conn-state').dataset.seq === '13');
  for (let i = 0; i < 100 && urls.length < 3; i++) await new Promise((r) => setTimeout(r, 100));
  assert(urls.length === 3 && new URL(urls[2]).searchParams.get('after') === '13', `resume after the gap: ${urls}`);
  await waitFor(page, () => document.querySelector('#conn-state').dataset.state === 'live');
  sockets[2].send(JSON.stringify(event(14, 7)));
  sockets[2].send(JSON.stringify(event(15, 8)));
  await waitTile(page, 8);

  const seen = await page.evaluate(() => window.ariesLive.state.seen);
  assert(JSON.stringify(seen) === JSON.stringify(['snapshot:10', 11, 12, 13, 14, 15]), `applied ${seen}`);
  const activity = await page.$$eval('#activity li', (l) => l.map((x) => x.textContent));
  assert(activity[0].includes('O0000015') && activity.some((a) => a.includes('O0000014')), `activity ${activity}`);
  assert(await page.$('#chart-counters svg rect.bar'), 'the counters chart has bars');
  const label = await page.getAttribute('#chart-events svg', 'aria-label');
  assert(/Events per minute: .*: \d+/.test(label), `chart label ${label}`);
  assert((await page.textContent('#kpi-billed_this_month')) === '$1,234.50', 'money tile');
  await screenshot(page, 'dashboard-protocol');

  // An event without KPIs (the server coalesces them): the page reads them over REST a moment later.
  await page.route(`**/v1/tenants/${slug}/dashboard`, (route) => route.fulfill({
    status: 200, contentType: 'application/json', body: JSON.stringify({ type: 'snapshot', seq: 16, kpis: kpis(42), recent: [] }),
  }));
  const bare = event(16, 0);
  delete bare.kpis;
  sockets[2].send(JSON.stringify(bare));
  await waitTile(page, 42);

  // The server going away for good: the page says so, and keeps trying.
  await page.unrouteAll({ behavior: 'ignoreErrors' });
  sockets[2].close();
});
