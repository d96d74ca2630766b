// End-to-end test of the web page in headless Chromium (Debian's `chromium`, driven by
// playwright-core). Starts the server command, then: first-setup password, log in again,
// watch a call appear live, filter the calls page, download the excel CSV and check its rows,
// change a setting and see it applied. Any JavaScript error on the page fails the test.
//
//   CDRBOX_E2E_CMD   command printing "http://ADDR/" on stdout (default: `cdrbox demo` from
//                    target/release on 127.0.0.1:0 — the simulated PBX makes a call every second).
//                    `cargo test --release --test integration -- web_e2e_browser::` sets it.
//   CHROMIUM         browser path (default /usr/bin/chromium)
//   CDRBOX_E2E_CODE_FILE  where the one-time setup code is, when the banner does not print it
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { fail, parseCsv, startServer, until } from './lib.mjs';

const cmd = process.env.CDRBOX_E2E_CMD || '../../target/release/cdrbox demo --listen 127.0.0.1:0 --rate 1';
const PASS = 'e2e-password-1';

async function main() {
  const { child, base, code } = await startServer(cmd);
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic'] });
  const errors = [];
  try {
    const ctx = await browser.newContext({ acceptDownloads: true });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
    page.on('console', (m) => { if (m.type() === 'error' && !/display\.png|404/.test(m.text())) errors.push('console: ' + m.text()); });

    // 1. First visit: redirected to the setup form; set the admin password.
    await page.goto(base + '/');
    await page.waitForURL(/\/login$/);
    await page.locator('#setup').waitFor({ state: 'visible' });
    // The code as the owner reads it: the banner's, else the file `cdrbox setup-code` prints.
    const setupCode = code || readFileSync(process.env.CDRBOX_E2E_CODE_FILE, 'utf8').trim();
    await page.fill('#setup-code', setupCode);
    await page.fill('#setup-password', PASS);
    await page.fill('#setup-again', PASS);
    await Promise.all([page.waitForURL(base + '/'), page.click('#setup button[type=submit]')]);
    await page.locator('#links tbody tr').first().waitFor();
    console.log('ok: password set, status page shows links');

    // 2. Log out and back in.
    await Promise.all([page.waitForURL(/\/login$/), page.click('#logout')]);
    await page.locator('#login').waitFor({ state: 'visible' });
    await page.fill('#login-password', PASS);
    await Promise.all([page.waitForURL(base + '/'), page.click('#login button[type=submit]')]);
    console.log('ok: logged in again');

    // 3. Calls page: a new call appears live (SSE) without reloading.
    await page.click('a[data-tab=calls]');
    await page.locator('#calls tbody tr').first().waitFor();
    // The calls count comes after the rows ("counting calls… (N records)" until then).
    const total = async () => {
      let t = '';
      await until('the calls count', async () => /^\d+ calls match/.test(t = (await page.textContent('#calls-total')) || ''));
      return Number(t.split(' ')[0]);
    };
    const before = await total();
    await until('a live call', async () => (await total()) > before);
    console.log('ok: live call arrived (' + before + ' → ' + (await total()) + ')');

    // 4. Filter: only unanswered calls.
    if (!(await page.locator('#filter-box').getAttribute('open') !== null)) await page.click('#filter-box summary');
    // The unfiltered total, read before the filter is submitted (the page refreshes at once).
    const all = await total();
    await page.check('#filters input[name=disposition][value="NO ANSWER"]');
    await page.click('#filters button[type=submit]');
    await until('filtered rows', async () => {
      // One row per call; the records that matched are its (collapsed) leg rows.
      const cells = await page.locator('#calls tbody tr.leg td:nth-child(6)').allTextContents();
      return cells.length > 0 && cells.every((t) => t === 'NO ANSWER');
    });
    const filtered = await total();
    // Calls keep arriving, so the unfiltered total is only a snapshot: what proves the filter
    // is that every row shown (and every CSV line below) is NO ANSWER.
    if (!(filtered > 0)) fail('filtered total ' + filtered + ' of ' + all);
    console.log('ok: filter applied, ' + filtered + ' unanswered');

    // 5. Download the excel CSV of the filtered set and check it.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#downloads a:text("CSV excel")')]);
    const csv = readFileSync(await download.path(), 'utf8');
    if (!csv.startsWith('\ufeff')) fail('excel CSV has no BOM');
    // The page picks the separator by the browser's locale (`;` where the decimal mark is a
    // comma); the excel headers are words (issue 13).
    const sep = csv.slice(1, csv.indexOf('\r\n')).includes(';') ? ';' : ',';
    const rows = parseCsv(csv.slice(1), sep);
    const header = rows[0];
    const disp = header.indexOf('Disposition');
    if (disp < 0) fail('no disposition column: ' + rows[0]);
    if (rows.length - 1 < filtered) fail('CSV has ' + (rows.length - 1) + ' rows, page said ' + filtered);
    const bad = rows.slice(1).filter((r) => r[disp] !== 'NO ANSWER');
    if (bad.length) fail('CSV rows not filtered: ' + JSON.stringify(bad[0]));
    if (!rows.slice(1).every((r) => r.length === header.length)) fail('ragged CSV rows');
    if (!/[А-Яа-яЁё]/.test(csv)) console.log('note: no Cyrillic in this data set');
    console.log('ok: CSV download, ' + (rows.length - 1) + ' rows, all NO ANSWER');

    // 6. Change a setting and see it applied.
    await page.click('a[data-tab=settings]');
    const name = page.locator('[data-field="box.name"]');
    await name.waitFor();
    await name.fill('e2e-box');
    await page.click('#settings-form button[type=submit]');
    await until('the save message', async () => /Saved/.test((await page.textContent('#settings-msg')) || ''));
    await page.click('a[data-tab=status]');
    await until('the new box name', async () => (await page.textContent('#box-name')) === 'e2e-box');
    console.log('ok: setting saved and applied');

    if (errors.length) fail('page errors:\n' + errors.join('\n'));

    // 7. A bad value is refused (400, expected in the console) with a message next to the field.
    await page.click('a[data-tab=settings]');
    // The tab reloads /api/config and re-renders the form; typing before that lands would be
    // overwritten. The reloaded form shows the name saved in step 6.
    await until('the settings form reloaded', async () =>
      (await page.locator('[data-field="box.name"]').inputValue().catch(() => '')) === 'e2e-box');
    const port = page.locator('[data-field="pbx[0].port"]');
    await port.fill('70000');
    await page.click('#settings-form button[type=submit]');
    await page.locator('.field.has-error .ferr').waitFor();
    console.log('ok: invalid setting refused next to its field');
    if (errors.some((e) => e.startsWith('pageerror'))) fail('page errors:\n' + errors.join('\n'));
    if (process.env.E2E_SCREENSHOTS) {
      await page.setViewportSize({ width: 390, height: 844 });
      for (const tab of ['status', 'calls', 'stats', 'settings', 'setup']) {
        await page.click('a[data-tab=' + tab + ']');
        await page.waitForTimeout(700);
        await page.screenshot({ path: process.env.E2E_SCREENSHOTS + '/' + tab + '.png', fullPage: false });
      }
    }
    console.log('e2e: all passed');
  } finally {
    await browser.close();
    child.kill('SIGTERM');
  }
}

main().catch((e) => { console.error('e2e FAILED:', e.message); process.exit(1); });
