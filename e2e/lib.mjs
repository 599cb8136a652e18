// Shared by the console's browser tests: Debian's Chromium driven by playwright-core (no browser
// download), a guard that refuses and records every request leaving 127.0.0.1, RFC 6238 TOTP
// codes from node:crypto, accessibility checks, screenshots under target/e2e-artifacts/.

import { chromium } from 'playwright-core';
import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const ARTIFACTS = process.env.E2E_ARTIFACTS || join(ROOT, 'target', 'e2e-artifacts');

export async function launch() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const offHost = [];
  await context.route('**', (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === '127.0.0.1' || url.protocol === 'data:') return route.continue();
    offHost.push(route.request().url());
    return route.abort('blockedbyclient');
  });
  // WebSockets are not seen by route(); record any that would leave the machine.
  context.on('page', (p) => p.on('websocket', (ws) => {
    if (new URL(ws.url()).hostname !== '127.0.0.1') offHost.push(ws.url());
  }));
  const page = await context.newPage();
  page.on('websocket', (ws) => {
    if (new URL(ws.url()).hostname !== '127.0.0.1') offHost.push(ws.url());
  });
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  return { browser, context, page, offHost, consoleErrors };
}

function base32Decode(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of s.replace(/=+$/, '').toUpperCase()) {
    const i = alphabet.indexOf(ch);
    if (i < 0) throw new Error(`not base32: ${ch}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** RFC 6238 (SHA-1, 6 digits, 30 s) for the base32 `secret` at `unixSeconds`. */
export function totp(secret, unixSeconds = Date.now() / 1000) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(unixSeconds / 30)));
  const mac = createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const off = mac[mac.length - 1] & 0x0f;
  const n = ((mac[off] & 0x7f) << 24) | (mac[off + 1] << 16) | (mac[off + 2] << 8) | mac[off + 3];
  return String(n % 1_000_000).padStart(6, '0');
}

/** Every input, select and textarea on the page has an accessible name; returns those that lack one. */
export async function unlabelled(page) {
  return page.evaluate(() => {
    const bad = [];
    for (const el of document.querySelectorAll('input, select, textarea')) {
      if (el.type === 'hidden') continue;
      const byFor = el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`);
      const named = byFor || el.closest('label') || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
      if (!named || (byFor && !byFor.textContent.trim())) bad.push(el.outerHTML.slice(0, 120));
    }
    return bad;
  });
}

export async function checkLabels(page, where) {
  const bad = await unlabelled(page);
  if (bad.length) throw new Error(`${where}: inputs without a label: ${bad.join(' | ')}`);
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot ${path}`);
}

/** Focuses the labelled field and types into it with the keyboard. */
export async function typeInto(page, label, text) {
  await page.getByLabel(label, { exact: true }).focus();
  await page.keyboard.type(text);
}

/** Runs `body`, then checks no request left the machine; prints `OK` for the Rust test. */
export async function run(name, body) {
  const env = await launch();
  let failed = null;
  try {
    await body(env);
  } catch (e) {
    failed = e;
    try {
      await screenshot(env.page, `${name}-failure`);
    } catch {
      // the page may be gone
    }
  }
  await env.browser.close();
  if (!failed && env.offHost.length) failed = new Error(`requests left 127.0.0.1: ${env.offHost.join(', ')}`);
  const csp = env.consoleErrors.filter((m) => /Content Security Policy/i.test(m));
  if (!failed && csp.length) failed = new Error(`the page broke its Content-Security-Policy: ${csp.join(' | ')}`);
  if (failed) {
    console.error(`FAIL ${name}: ${failed.stack || failed}`);
    if (env.consoleErrors.length) console.error(`browser console: ${env.consoleErrors.join('\n')}`);
    process.exit(1);
  }
  console.log(`OK ${name}`);
}

export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

/**
 * Waits until `fn(arg)`, evaluated in the page, is truthy. (Playwright's waitForFunction polls by
 * evaluating a string, which the console's CSP rightly refuses; page.evaluate is not affected.)
 */
export async function waitFor(page, fn, arg, timeout = 15000) {
  const end = Date.now() + timeout;
  for (;;) {
    if (await page.evaluate(fn, arg)) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${fn.toString().slice(0, 160)} (${JSON.stringify(arg)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
