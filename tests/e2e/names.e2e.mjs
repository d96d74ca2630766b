// People and names in headless Chromium (issue 13, item 2), driven by tests/web_e2e_names.rs
// against the real `cdrbox run` with a simulated PBX (extension 1003's phone sends the CallerID
// name "Иван Петров"):
//   CDRBOX_BASE     http://127.0.0.1:PORT of the box (a password is set: CDRBOX_PASS)
//   CDRBOX_CONFIG   the config file (read before and after the save)
//   CDRBOX_RESULTS  where to write {before, after} of the save (the harness checks that only
//                   [names] changed)
//   E2E_SCREENSHOTS directory for the screenshots (1366×768 and 390×844)
// Steps: an empty name is refused in plain words without touching the file; 1003 = "Анна
// Петрова" is added and saved ("Saved and applied": no restart); a call from 1003 that starts
// AFTER the save shows "Анна Петрова" on the calls page, found by searching "анна"; removing
// the row asks first (cancelled here). No sideways scrolling at 390 px. Any page error fails.
import { readFileSync, writeFileSync } from 'node:fs';
import { fail, pageGet, until, withBrowser } from './lib.mjs';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(k + ' is not set'); return v; };
const base = env('CDRBOX_BASE'), PASS = env('CDRBOX_PASS'), CONFIG = env('CDRBOX_CONFIG');
const shots = process.env.E2E_SCREENSHOTS;
const readConfig = () => readFileSync(CONFIG, 'utf8');
const NAME = 'Анна Петрова', NUMBER = '1003';

// What the page said last, beside where it was, when the run fails.
const settingsMessage = async (p) => (await p.textContent('#settings-msg').catch(() => '')) || '';

withBrowser(shots, async (browser, errors) => {
  const dialogs = [];
  const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error' && !/display\.png|40[0-9]|Failed to load resource/.test(m.text())) errors.push('console: ' + m.text()); });
  let cancelNext = false;
  page.on('dialog', (d) => { dialogs.push(d.message()); if (cancelNext) { cancelNext = false; d.dismiss(); } else d.accept(); });
  const api = async (path) => JSON.parse(await pageGet(page, path));
  const noSidewaysScroll = async (what) => {
    const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (over > 0) fail(what + ' is ' + over + ' px wider than the window');
  };

  await page.goto(base + '/');
  await page.waitForURL(/\/login(#.*)?$/);
  await page.fill('#login-password', PASS);
  await Promise.all([page.waitForURL(base + '/'), page.click('#login button[type=submit]')]);
  await until('calls from ' + NUMBER, async () => (await api('/api/calls?limit=1&source=' + NUMBER)).total > 0, 60000);
  // Calls from 1003 so far: the one to look for is none of these.
  const before = new Set((await api('/api/calls?limit=500&source=' + NUMBER)).records.map((r) => r.callKey));

  // 1. The settings page: add a row, leave the name empty: refused in plain words.
  await page.click('a[data-tab=settings]');
  await page.locator('#names-table').waitFor();
  const fileBefore = readConfig();
  await page.click('#names-add');
  await page.locator('#names-table .names-number').last().fill(NUMBER);
  await page.click('#settings-form button[type=submit]');
  const err = (await page.locator('#names-table .names-row .ferr').first().textContent()) || '';
  if (!/name is empty/.test(err)) fail('an empty name was not refused in words: ' + err);
  if (readConfig() !== fileBefore) fail('a refused row changed the file');
  await page.locator('#names-table').scrollIntoViewIfNeeded();
  if (shots) await page.screenshot({ path: shots + '/names-empty-refused-1366.png' });

  // 2. The name, saved: applied at once.
  await page.locator('#names-table .names-name').last().fill(NAME);
  await page.click('#settings-form button[type=submit]');
  await until('the save', async () => /Saved and applied/.test((await page.textContent('#settings-msg')) || ''));
  const fileAfter = readConfig();
  writeFileSync(env('CDRBOX_RESULTS'), JSON.stringify({ before: fileBefore, after: fileAfter }));
  // The fresh form shows the saved row.
  if ((await page.locator('#names-table .names-name').last().inputValue()) !== NAME) fail('the saved name is not in the form');
  await page.locator('#names-table').scrollIntoViewIfNeeded();
  if (shots) await page.screenshot({ path: shots + '/settings-names-1366.png' });
  await page.setViewportSize({ width: 390, height: 844 });
  await noSidewaysScroll('the settings page at 390 px');
  await page.locator('#names-table').scrollIntoViewIfNeeded();
  if (shots) await page.screenshot({ path: shots + '/settings-names-390.png' });
  await page.setViewportSize({ width: 1366, height: 768 });
  console.log('ok: empty name refused, name saved and applied');

  // 3. A new call from 1003 carries the name, and searching the name finds it.
  const q = '/api/calls?limit=100&source=' + encodeURIComponent('анна');
  let fresh = null;
  await until('a new call from ' + NUMBER + ' named ' + NAME, async () => {
    const d = await api(q);
    fresh = d.records.find((r) => r.source === NUMBER && !before.has(r.callKey));
    return !!fresh;
  }, 90000);
  if (fresh.sourceName !== NAME) fail('the API names 1003 ' + JSON.stringify(fresh.sourceName));
  if (!/Иван Петров/.test(fresh.callerName)) fail('callerName lost its meaning: ' + fresh.callerName);
  await page.goto(base + '/#calls?source=' + encodeURIComponent('анна'));
  const named = page.locator('#calls tbody tr.call', { has: page.locator('td.name', { hasText: NAME }) });
  await until('the calls page showing ' + NAME, async () => (await named.count()) > 0, 30000);
  const rows = await page.locator('#calls tbody tr.call').allTextContents();
  if (rows.some((t) => !t.includes(NAME))) fail('searching "анна" listed a call not from ' + NAME + ': ' + rows.find((t) => !t.includes(NAME)));
  if (shots) await page.screenshot({ path: shots + '/calls-by-name-1366.png' });
  await page.setViewportSize({ width: 390, height: 844 });
  await noSidewaysScroll('the calls page at 390 px');
  if (shots) await page.screenshot({ path: shots + '/calls-by-name-390.png', fullPage: true });
  await page.setViewportSize({ width: 1366, height: 768 });
  console.log('ok: a call after the save shows ' + NAME + ', found by "анна" (' + rows.length + ' calls)');

  // 4. Removing a row asks first; Cancel keeps it (nothing saved).
  await page.click('a[data-tab=settings]');
  await page.locator('#names-table .names-remove').first().waitFor();
  const n = dialogs.length;
  cancelNext = true;
  await page.locator('#names-table .names-remove').first().click();
  if (!/Remove Анна Петрова \(1003\)/.test(dialogs[n] || '')) fail('removing a name did not ask: ' + dialogs[n]);
  if ((await page.locator('#names-table .names-row').count()) !== 1) fail('a cancelled removal removed the row');
  if (readConfig() !== fileAfter) fail('a cancelled removal changed the file');
  console.log('ok: removal asks first');

  if (errors.length) fail('page errors:\n' + errors.join('\n'));
  console.log('e2e: all passed');
}, settingsMessage).catch((e) => { console.error('e2e FAILED:', e.message); process.exit(1); });
