// Shared by the browser scripts (web, people, import): start the server command, poll for a condition,
// read a CSV. Polling runs in Node: page.waitForFunction evaluates strings, which the page's
// CSP forbids.
import { spawn } from 'node:child_process';

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
export async function reportFailure(browser, shots, errors) {
  for (const p of browser.contexts().flatMap((c) => c.pages())) {
    console.log('page at failure: ' + p.url());
    if (shots) await p.screenshot({ path: shots + '/failure.png', fullPage: true }).catch(() => {});
  }
  if (errors.length) console.log('page errors:\n' + errors.join('\n'));
}
