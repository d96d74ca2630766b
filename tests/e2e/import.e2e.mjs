// The Master.csv uploads in headless Chromium (playwright-core), at desktop and phone width:
// set the admin password (with the one-time setup code the demo's banner prints); on the
// settings page, in the PBX's own section, pick the real Asterisk 22 Master.csv and import it;
// the report must say 42 lines read, 42 new, the box's asterisk-profile export must then be
// Master.csv row for row (the demo makes no calls of its own, so the journal holds only the
// import), and the calls page must mark each of the 42 records "master-csv". Then at phone
// width, logged in again, the same upload must add nothing (0 new, 42 already present) and
// leave the export as it was, a copy with a damaged last line must name that line and its
// reason, and the file as usegmtime = yes writes it, with "times in GMT" ticked, must find the
// same 42 calls; the gap card's upload on the status page must say the same; the viewer
// account sees neither upload.
// Screenshots of both pages at both widths go to $CDRBOX_E2E_SHOTS. Any JavaScript error
// fails the test.
//
//   CDRBOX_E2E_CMD     command printing "http://ADDR/" on stdout (tests/import_e2e_browser.rs
//                      sets it: `cdrbox demo` with no simulated calls)
//   CDRBOX_MASTER_CSV  the file to upload
//   CDRBOX_E2E_SHOTS   directory for the screenshots
//   CHROMIUM           browser path (default /usr/bin/chromium)
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { fail, pageGet, startServer, until } from './lib.mjs';

const cmd = process.env.CDRBOX_E2E_CMD;
const csv = process.env.CDRBOX_MASTER_CSV;
const shots = process.env.CDRBOX_E2E_SHOTS || '/tmp/cdrbox-import-shots';
const PASS = 'e2e-import-pass-1';
const PBX = 'demo-pbx';

// The lines of a file, sorted: compared row for row whatever the order (CRLF or LF alike).
const sortedLines = (text) => text.split(/\r?\n/).filter((l) => l !== '').sort();

async function main() {
  if (!cmd || !csv) fail('CDRBOX_E2E_CMD and CDRBOX_MASTER_CSV must be set');
  mkdirSync(shots, { recursive: true });
  const master = sortedLines(readFileSync(csv, 'utf8'));
  const { child, base, code } = await startServer(cmd);
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic'] });
  const errors = [];
  const scratch = mkdtempSync(join(tmpdir(), 'cdrbox-import-e2e-'));
  const watch = (page) => {
    page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
    page.on('console', (m) => { if (m.type() === 'error' && !/display\.png|404/.test(m.text())) errors.push('console: ' + m.text()); });
  };
  const callsTotal = async (page) => JSON.parse(await pageGet(page, '/api/calls?limit=1')).total;
  // The export as the user downloads it, byte-exact cells (the formula guard off on purpose).
  const exported = async (page) => sortedLines(await pageGet(page, '/export.csv?profile=asterisk&formulaGuard=off'));
  const sameAsMaster = (rows, when) => {
    if (rows.length !== master.length) fail(when + ': the export has ' + rows.length + ' rows, Master.csv ' + master.length);
    const diff = rows.findIndex((r, i) => r !== master[i]);
    if (diff >= 0) fail(when + ': export row ' + JSON.stringify(rows[diff]) + ' is not Master.csv\'s ' + JSON.stringify(master[diff]));
  };
  const showSettings = async (page) => {
    await page.click('a[data-tab=settings]');
    await page.locator('[data-import-pbx="' + PBX + '"] input[type=file]').waitFor({ state: 'visible' });
  };
  // Uploads through the PBX's section of the settings page; resolves with the report shown.
  const uploadOnSettings = async (page, file = csv, gmt = false) => {
    const box = page.locator('[data-import-pbx="' + PBX + '"]');
    await box.locator('input[type=file]').setInputFiles(file);
    await box.locator('input.pbx-import-gmt').setChecked(gmt);
    await box.locator('pre').evaluate((n) => { n.textContent = ''; });
    await box.locator('button.pbx-import-go').click();
    await until('the import report on the settings page', async () => /lines read/.test((await box.locator('pre').textContent()) || ''));
    return box.locator('pre').textContent();
  };
  try {
    // ---- desktop: first setup, then the upload on the settings page -----------------------
    const desk = await (await browser.newContext({ viewport: { width: 1366, height: 768 } })).newPage();
    watch(desk);
    await desk.goto(base + '/');
    await desk.waitForURL(/\/login$/);
    await desk.locator('#setup').waitFor({ state: 'visible' });
    await desk.fill('#setup-code', code);
    await desk.fill('#setup-password', PASS);
    await desk.fill('#setup-again', PASS);
    await Promise.all([desk.waitForURL(base + '/'), desk.click('#setup button[type=submit]')]);
    await desk.locator('#import-form').waitFor({ state: 'visible' });
    console.log('ok: the admin sees the import form on the status page');
    const before = await callsTotal(desk);
    if (before !== 0) fail('the demo without calls already holds ' + before + ' records');

    await showSettings(desk);
    const first = await uploadOnSettings(desk);
    if (!first.startsWith('42 lines read: 42 new, 0 already present, 0 rejected')) fail('settings report: ' + first);
    const after = await callsTotal(desk);
    if (after !== 42) fail('calls ' + before + ' → ' + after + ' after importing 42 lines');
    sameAsMaster(await exported(desk), 'after the first upload');
    // The calls page says where each imported record came from (its origin).
    await desk.click('a[data-tab=calls]');
    await until('the imported records on the calls page', async () => (await desk.locator('#calls tbody tr.leg').count()) === 42);
    const origins = await desk.locator('#calls tbody tr.leg td:last-child').allTextContents();
    if (!origins.every((t) => t.startsWith('master-csv'))) fail('origins on the calls page: ' + JSON.stringify([...new Set(origins)]));
    await showSettings(desk);
    // The upload is not a setting: Save after it finds nothing changed.
    await desk.click('#settings-form .sticky-save button[type=submit]');
    await until('the save message', async () => /Nothing changed/.test((await desk.textContent('#settings-msg')) || ''));
    await desk.screenshot({ path: shots + '/1366-settings-import.png', fullPage: true });
    console.log('ok: settings page, ' + first.split('\n')[0] + '; the export is Master.csv row for row');

    // ---- phone: log in again, the same file adds nothing -----------------------------------
    const phone = await (await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true })).newPage();
    watch(phone);
    await phone.goto(base + '/login');
    await phone.locator('#login').waitFor({ state: 'visible' });
    await phone.fill('#login-password', PASS);
    await Promise.all([phone.waitForURL(base + '/'), phone.click('#login button[type=submit]')]);
    await showSettings(phone);
    const box = phone.locator('[data-import-pbx="' + PBX + '"]');
    // boundingBox() is null until the button is drawn: wait for it, then measure (a run under
    // load once measured before the settings page had drawn it).
    await box.locator('button.pbx-import-go').waitFor({ state: 'visible' });
    const b = await box.locator('button.pbx-import-go').boundingBox();
    if (!b || b.x < 0 || b.x + b.width > 390) fail('the Import button is off a phone screen: ' + JSON.stringify(b));
    const again = await uploadOnSettings(phone);
    if (!again.startsWith('42 lines read: 0 new, 42 already present, 0 rejected')) fail('second report: ' + again);
    if ((await callsTotal(phone)) !== after) fail('the repeat changed the calls');
    sameAsMaster(await exported(phone), 'after the repeat');
    // A damaged line is reported by its number and reason; the rest is read.
    const damaged = join(scratch, 'Master-damaged.csv');
    writeFileSync(damaged, Buffer.concat([readFileSync(csv), Buffer.from('"half a line\n')]));
    const bad = await uploadOnSettings(phone, damaged);
    if (!/^43 lines read: 0 new, 42 already present, 1 rejected\n {2}line 43: \S/.test(bad)) fail('report with a damaged line: ' + JSON.stringify(bad));
    if ((await callsTotal(phone)) !== after) fail('the damaged file changed the calls');
    // The same calls as cdr_csv writes them with usegmtime = yes (Moscow is UTC+3): with the
    // box ticked they are the stored calls again.
    const gmtFile = join(scratch, 'Master-gmt.csv');
    let moved = 0;
    writeFileSync(gmtFile, readFileSync(csv, 'utf8').replace(/"2026-11-22 (\d\d):(\d\d):(\d\d)"/g,
      (m, h, mi, sec) => { moved++; return '"2026-11-22 ' + String(Number(h) - 3).padStart(2, '0') + ':' + mi + ':' + sec + '"'; }));
    if (moved < 84) fail('only ' + moved + ' times moved to GMT');
    const gmt = await uploadOnSettings(phone, gmtFile, true);
    if (!gmt.startsWith('42 lines read: 0 new, 42 already present, 0 rejected')) fail('GMT file with the box ticked: ' + gmt);
    if ((await callsTotal(phone)) !== after) fail('the GMT file changed the calls');
    const [scroll, width] = await phone.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    if (scroll > width) fail('the settings page scrolls sideways at 390 px (' + scroll + ' px wide)');
    await box.scrollIntoViewIfNeeded();
    await phone.screenshot({ path: shots + '/390-settings-import.png', fullPage: true });
    await phone.screenshot({ path: shots + '/390-settings-import-view.png' });
    console.log('ok: phone width, a repeat adds nothing: ' + again.split('\n')[0] + '; a damaged line: ' + bad.split('\n')[1].trim() + '; the GMT file with the box ticked: ' + gmt.split('\n')[0]);

    // ---- the gap card's upload on the status page, both widths ----------------------------
    for (const page of [desk, phone]) {
      await page.click('a[data-tab=status]');
      await page.locator('#import-form').waitFor({ state: 'visible' });
      await page.setInputFiles('#import-file', csv);
      await page.locator('#import-report').evaluate((n) => { n.textContent = ''; });
      await page.click('#import-form button[type=submit]');
      await until('the status page report', async () => /lines read/.test((await page.textContent('#import-report')) || ''));
      const report = await page.textContent('#import-report');
      if (!report.startsWith('42 lines read: 0 new, 42 already present, 0 rejected')) fail('status page report: ' + report);
      const w = page.viewportSize().width;
      await page.screenshot({ path: shots + '/' + w + '-status-import.png', fullPage: true });
    }
    if ((await callsTotal(desk)) !== after) fail('the status page uploads changed the calls');
    console.log('ok: the gap card\'s upload reports the same; screenshots in ' + shots);

    // The read-only account sees no upload on either page (the box refuses it one anyway).
    await desk.click('a[data-tab=settings]');
    await desk.locator('#pw-form').waitFor({ state: 'visible' });
    await desk.selectOption('#pw-form select[name=user]', 'viewer');
    await desk.fill('#pw-form input[name=password]', 'e2e-viewer-pass-1');
    await desk.click('#pw-form button[type=submit]');
    await until('the viewer password set', async () => /Password changed/.test((await desk.textContent('#pw-msg')) || ''));
    const viewer = await (await browser.newContext({ viewport: { width: 1366, height: 768 } })).newPage();
    watch(viewer);
    await viewer.goto(base + '/login');
    await viewer.locator('#login').waitFor({ state: 'visible' });
    await viewer.selectOption('#login-user', 'viewer');
    await viewer.fill('#login-password', 'e2e-viewer-pass-1');
    await Promise.all([viewer.waitForURL(base + '/'), viewer.click('#login button[type=submit]')]);
    await viewer.locator('#links tbody tr').first().waitFor();
    await until('the status page drawn for the viewer', async () => /read-only/.test((await viewer.textContent('#who')) || ''));
    if (await viewer.locator('#import-form').isVisible()) fail('the viewer sees the gap card\'s upload');
    await viewer.click('a[data-tab=settings]');
    await viewer.locator('#settings-form [data-field]').first().waitFor();
    if ((await viewer.locator('[data-import-pbx]').count()) !== 0) fail('the viewer sees the settings page\'s upload');
    if (await viewer.locator('#pw-form').isVisible()) fail('the viewer sees the password form');
    console.log('ok: the viewer sees no upload');

    if (errors.length) fail(errors.join('\n'));
    console.log('e2e: all passed');
  } finally {
    await browser.close();
    child.kill('SIGTERM');
    rmSync(scratch, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error('e2e failed: ' + (e.stack || e)); process.exit(1); });
