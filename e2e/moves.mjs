// The console's Moves panel in Chromium: an operator logs in (enrolling TOTP), opens Moves, sees
// refusals shown readably (an unknown tenant, the shard the tenant is already on), starts a move
// of the tenant to the other shard and watches its row go through the states to `done` over the
// live socket, without reloading the page. With STUCK, a tenant whose move's runner died while
// copying (started elsewhere before the page opened): its row is in the first snapshot, and the
// page cancels it (confirmation by keyboard) and sees it rolled back. Usage:
// node moves.mjs BASE EMAIL PASSWORD SLUG FROM_SHARD TO_SHARD [STUCK]

import { run, waitFor, totp, checkLabels, screenshot, typeInto, assert } from './lib.mjs';

const [base, email, password, slug, fromShard, toShard, stuck] = process.argv.slice(2);
if (!toShard) {
  console.error('usage: node moves.mjs BASE EMAIL PASSWORD SLUG FROM_SHARD TO_SHARD [STUCK]');
  process.exit(2);
}

const ORDER = ['pending', 'copying', 'catching_up', 'frozen', 'flipped', 'done'];

async function startMove(page, tenant, shard) {
  await page.getByLabel('Tenant slug', { exact: true }).fill(tenant);
  await page.getByLabel('Target shard', { exact: true }).selectOption(shard);
  await page.getByRole('button', { name: 'Start move' }).press('Enter');
}

await run('moves', async ({ page }) => {
  await page.goto(`${base}/console/#/moves`);
  // No session: the console sends us to the login page; first login enrols the authenticator.
  await page.waitForURL(/#\/login$/);
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
  await page.waitForSelector('h1:text("Tenants")');

  // The Moves panel, live.
  await page.getByRole('link', { name: 'Moves' }).press('Enter');
  await page.waitForSelector('h1:text("Tenant moves")');
  await checkLabels(page, 'moves');
  await page.waitForSelector('#moves-conn[data-state="live"]');
  const stuckRow = `#moves-table tr[data-tenant="${stuck}"]`;
  if (stuck) await page.waitForSelector(`${stuckRow}[data-state="copying"]`);
  else await page.waitForSelector('#moves-table td:text("No moves yet.")');
  const options = await page.$$eval('select[name="to_shard"] option', (l) => l.map((o) => o.value));
  assert(options.includes(fromShard) && options.includes(toShard), `shards offered: ${options}`);

  // Refusals, readable (problem+json detail, not a status code).
  await startMove(page, 'no-such-tenant', toShard);
  await waitFor(page, () => document.getElementById('move-error').textContent.trim() !== '');
  const notFound = (await page.textContent('#move-error')).trim();
  assert(/not found|no such|does not exist/i.test(notFound) && !/^HTTP \d+$/.test(notFound), `unknown tenant: ${notFound}`);
  await startMove(page, slug, fromShard);
  await waitFor(page, (prev) => {
    const t = document.getElementById('move-error').textContent.trim();
    return t !== '' && t !== prev;
  }, notFound);
  const same = (await page.textContent('#move-error')).trim();
  assert(same.includes(`already on ${fromShard}`), `same shard: ${same}`);
  console.log(`refusals shown: "${notFound}" / "${same}"`);
  await screenshot(page, 'operator-moves-refused');

  // A marker a reload would wipe: everything below arrives over the socket.
  await page.evaluate(() => { window.e2eNoReload = true; });
  await startMove(page, slug, toShard);
  await waitFor(page, () => document.getElementById('move-error').textContent.trim() === '');
  const row = `#moves-table tr[data-tenant="${slug}"]`;
  await page.waitForSelector(row);
  const seen = [];
  let shotCopying = false;
  const deadline = Date.now() + 120000;
  for (;;) {
    const now = await page.$eval(row, (tr) => ({
      state: tr.dataset.state,
      progress: Number(tr.querySelector('progress')?.value || 0) > 0,
      cancel: !!tr.querySelector('[data-action="cancel"]'),
      resume: !!tr.querySelector('[data-action="resume"]'),
    }));
    if (seen[seen.length - 1] !== now.state) seen.push(now.state);
    if (['copying', 'catching_up', 'frozen'].includes(now.state)) assert(now.cancel && now.resume, `Cancel and Resume offered while ${now.state}`);
    if (now.state === 'flipped') assert(!now.cancel && now.resume, 'no Cancel after the flip');
    if (now.state === 'copying' && now.progress && !shotCopying) {
      shotCopying = true;
      await screenshot(page, 'operator-moves-copying');
    }
    if (now.state === 'done') {
      assert(!now.cancel && !now.resume, 'no action on a finished move');
      break;
    }
    if (Date.now() > deadline) throw new Error(`the move did not reach done; states ${seen.join(' -> ')}`);
    await new Promise((r) => setTimeout(r, 40));
  }
  console.log(`states shown: ${seen.join(' -> ')}`);
  for (let i = 1; i < seen.length; i++) {
    assert(ORDER.indexOf(seen[i]) > ORDER.indexOf(seen[i - 1]), `states went back: ${seen.join(' -> ')}`);
  }
  assert(seen.length >= 3, `intermediate states shown: ${seen.join(' -> ')}`);
  assert(await page.evaluate(() => window.e2eNoReload === true), 'the page was reloaded');
  const cells = await page.$eval(row, (tr) => [...tr.children].map((td) => td.textContent));
  assert(cells[1] === `${fromShard} → ${toShard}`, `from → to: ${cells[1]}`);
  assert(/^[\d,]+ of [\d,]+ rows$/.test(cells[3]) && cells[3].split(' of ')[0] === cells[3].split(' of ')[1].replace(' rows', ''), `rows copied: ${cells[3]}`);
  assert(/^[\d,]+ ms$/.test(cells[5]), `pause: ${cells[5]}`);
  console.log(`done row: ${cells.join(' | ')}`);
  await screenshot(page, 'operator-moves-done');

  // The socket drops (as a network would): the page reconnects and its snapshot still has the move.
  const snapshots = await page.evaluate(() => window.ariesMoves.state.snapshots);
  await page.evaluate(() => window.ariesMoves.drop());
  await waitFor(page, (n) => window.ariesMoves.state.snapshots > n, snapshots);
  await page.waitForSelector('#moves-conn[data-state="live"]');
  await page.waitForSelector(`${row}[data-state="done"]`);

  if (!stuck) return;
  // The stuck move: Cancel, confirmed by keyboard (focus starts on the dialog's "no" button),
  // and its row turns rolled_back live.
  await page.getByRole('button', { name: `Cancel the move of ${stuck}` }).press('Enter');
  await page.waitForSelector('dialog[open]');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.waitForSelector(`${stuckRow}[data-state="rolled_back"]`, { timeout: 60000 });
  assert(!(await page.$(`${stuckRow} [data-action]`)), 'no action on a rolled back move');
  const flashText = (await page.textContent('#flash')).trim();
  assert(flashText === `Move of ${stuck}: rolled back.`, `flash: ${flashText}`);
  await screenshot(page, 'operator-moves-cancelled');
});
