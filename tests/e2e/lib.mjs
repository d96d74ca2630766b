// Shared by the browser scripts (web, people, stats, all-pages, import …): start the server command,
// launch Chromium, do the first setup, poll for a condition, read a CSV. Polling runs in Node: page.waitForFunction evaluates strings, which the page's
// CSP forbids.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

export const fail = (msg) => { throw new Error(msg); };

export async function until(what, cond, ms = 30000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) fail('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// RFC 4180 with a chosen separator: quoted cells may hold the separator, quotes and newlines.
export function parseCsv(text, sep) {
  const rows = [];
  let row = [], cell = '', quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; }
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === sep) { row.push(cell); cell = ''; }
    else if (c === '\r' && text[i + 1] === '\n') { row.push(cell); rows.push(row); row = []; cell = ''; i++; }
    else cell += c;
  }
  if (cell !== '' || row.length) { row.push(cell); rows.push(row); }
  return rows;
}

// Starts `cmd` (it prints "http://ADDR/" and, for the demo, the setup code); resolves with the
// child, the base URL and the code.
export function startServer(cmd) {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', 'exec ' + cmd], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    const timer = setTimeout(() => reject(new Error('server printed no address: ' + out)), 60000);
    child.stdout.on('data', (d) => {
      out += d;
      // The demo's banner prints the page's address and the one-time setup code.
      const m = /http:\/\/[^\s/]+/.exec(out);
      const c = /setup code:\s+([A-Z0-9]{4}-[A-Z0-9]{4})/.exec(out);
      if (m && (c || process.env.CDRBOX_E2E_CODE_FILE)) {
        clearTimeout(timer);
        resolve({ child, base: m[0], code: c ? c[1] : null });
      }
    });
    child.on('exit', (code) => reject(new Error('server exited ' + code + ': ' + out)));
  });
}

// An idempotent GET from inside the page (its session cookie), as text. Retried up to three
// times: a kept-alive connection the box closed as idle can fail a fetch that never reached it.
export async function pageGet(page, path) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await page.evaluate(async (p) => {
        const r = await fetch(p, { headers: { 'X-Requested-With': 'cdrbox' }, credentials: 'same-origin' });
        if (!r.ok) throw new Error(p + ': HTTP ' + r.status);
        return await r.text();
      }, path);
    } catch (e) {
      if (attempt >= 2) throw e;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
}

// After a failed run: where each page was, a full-page screenshot (when `shots` is set) and the
// page errors seen so far, so the failure can be read without running it again.
// `note(page)`, when given, adds what the page said (its message lines) to its address.
export async function reportFailure(browser, shots, errors, note) {
  for (const p of browser.contexts().flatMap((c) => c.pages())) {
    console.log('page at failure: ' + p.url() + (note ? ' — ' + (await note(p)) : ''));
    if (shots) await p.screenshot({ path: shots + '/failure.png', fullPage: true }).catch(() => {});
  }
  if (errors.length) console.log('page errors:\n' + errors.join('\n'));
}

// Runs `body(browser, errors)` in a fresh Chromium (`launch`), `errors` being the list its pages'
// errors go to; when it fails, `reportFailure` (with `note`) says where each page was before the
// error goes on; the browser is closed whatever happened.
export async function withBrowser(shots, body, note) {
  const browser = await launch();
  const errors = [];
  try {
    await body(browser, errors);
  } catch (e) {
    await reportFailure(browser, shots, errors, note);
    throw e;
  } finally {
    await browser.close();
  }
}

// Debian's headless Chromium ($CHROMIUM), without the background traffic a test does not want.
export function launch() {
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic'] });
}

// A page in a new context (default 1366×768) whose JavaScript errors go to `errors`.
export async function newPage(browser, errors, options = { viewport: { width: 1366, height: 768 } }) {
  const page = await (await browser.newContext(options)).newPage();
  page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
  return page;
}

// The first visit: redirected to the login page, which shows the first-setup form.
export async function openSetup(page, base) {
  await page.goto(base + '/');
  await page.waitForURL(/\/login$/);
  await page.locator('#setup').waitFor({ state: 'visible' });
}

// Fills the first-setup form with the code as the owner reads it (the banner's `code`, else the
// file `cdrbox setup-code` prints, $CDRBOX_E2E_CODE_FILE) and the password `pass`; resolves once
// the status page shows its links.
export async function submitSetup(page, base, code, pass) {
  await page.fill('#setup-code', code || readFileSync(process.env.CDRBOX_E2E_CODE_FILE, 'utf8').trim());
  await page.fill('#setup-password', pass);
  await page.fill('#setup-again', pass);
  await Promise.all([page.waitForURL(base + '/'), page.click('#setup button[type=submit]')]);
  await page.locator('#links tbody tr').first().waitFor();
}

// Runs `body({ page, base, code })` on a 1366×768 page against the server `cmd` starts (the
// screenshot directory `shots` made first); fails on any JavaScript error the page raised, then
// prints `e2e: all passed`; the browser and the server are stopped whatever happened.
export async function runOnServer(cmd, shots, body) {
  mkdirSync(shots, { recursive: true });
  const { child, base, code } = await startServer(cmd);
  const browser = await launch();
  const errors = [];
  try {
    const page = await newPage(browser, errors);
    await body({ page, base, code });
    if (errors.length) fail('page errors:\n' + errors.join('\n'));
    console.log('e2e: all passed');
  } finally {
    await browser.close();
    child.kill('SIGTERM');
  }
}

// Changes the first PBX's settings as the settings page does (PUT /api/config with the session's
// CSRF token, applied live); fails with `what` unless the box answers 200.
export async function putPbx(page, csrf, change, what) {
  const status = await page.evaluate(async ([token, body]) => {
    const r = await fetch('/api/config', { method: 'PUT', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': token, 'X-Requested-With': 'cdrbox' },
      body });
    return r.status + ' ' + (await r.text());
  }, [csrf, JSON.stringify({ pbx: [Object.assign({ _index: 0 }, change)] })]);
  if (!status.startsWith('200')) fail(what + ': HTTP ' + status);
}
