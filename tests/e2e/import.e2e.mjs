// The Master.csv upload on the status page, in headless Chromium (playwright-core): set the
// admin password (with the one-time setup code the demo's banner prints), pick the real
// Asterisk 22 Master.csv in the gap card's form, import, and check the report the page shows
// and that the 42 calls are then found on the calls API.
// A second upload of the same file must add nothing. Any JavaScript error fails the test.
//
//   CDRBOX_E2E_CMD   command printing "http://ADDR/" on stdout (tests/import_e2e_browser.rs
//                    sets it: `cdrbox demo` with no simulated calls)
//   CDRBOX_MASTER_CSV  the file to upload
//   CHROMIUM         browser path (default /usr/bin/chromium)
import { chromium } from 'playwright-core';
import { fail, startServer, until } from './lib.mjs';

const cmd = process.env.CDRBOX_E2E_CMD;
const csv = process.env.CDRBOX_MASTER_CSV;
const PASS = 'e2e-import-pass-1';

async function main() {
  if (!cmd || !csv) fail('CDRBOX_E2E_CMD and CDRBOX_MASTER_CSV must be set');
  const { child, base, code } = await startServer(cmd);
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic'] });
  const errors = [];
  try {
    const page = await (await browser.newContext()).newPage();
    page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
    page.on('console', (m) => { if (m.type() === 'error' && !/display\.png|404/.test(m.text())) errors.push('console: ' + m.text()); });
    await page.goto(base + '/');
    await page.waitForURL(/\/login$/);
    await page.locator('#setup').waitFor({ state: 'visible' });
    await page.fill('#setup-code', code);
    await page.fill('#setup-password', PASS);
    await page.fill('#setup-again', PASS);
    await Promise.all([page.waitForURL(base + '/'), page.click('#setup button[type=submit]')]);
    await page.locator('#import-form').waitFor({ state: 'visible' });
    console.log('ok: the admin sees the import form on the status page');

    const callsTotal = async () => (await page.evaluate(async () => (await (await fetch('/api/calls?limit=1', { headers: { 'X-Requested-With': 'cdrbox' } })).json()).total));
    const before = await callsTotal();
    await page.setInputFiles('#import-file', csv);
    await page.click('#import-form button[type=submit]');
    await until('the import report', async () => /lines read/.test((await page.textContent('#import-report')) || ''));
    const report = await page.textContent('#import-report');
    if (!report.startsWith('42 lines read: 42 new, 0 already present, 0 rejected')) fail('report: ' + report);
    const after = await callsTotal();
    if (after !== before + 42) fail('calls ' + before + ' → ' + after);
    console.log('ok: ' + report.split('\n')[0]);

    await page.click('#import-form button[type=submit]');
    await until('the second report', async () => /already present/.test((await page.textContent('#import-report')) || '') && !/42 new/.test((await page.textContent('#import-report')) || ''));
    const again = await page.textContent('#import-report');
    if (!again.startsWith('42 lines read: 0 new, 42 already present')) fail('second report: ' + again);
    if ((await callsTotal()) !== after) fail('the repeat changed the calls');
    console.log('ok: a repeat adds nothing');

    if (errors.length) fail(errors.join('\n'));
    console.log('e2e: all passed');
  } finally {
    await browser.close();
    child.kill('SIGTERM');
  }
}

main().catch((e) => { console.error('e2e failed: ' + (e.stack || e)); process.exit(1); });
