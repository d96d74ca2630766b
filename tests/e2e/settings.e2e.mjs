// The settings page, field by field, in headless Chromium (playwright-core + Debian's chromium).
// Driven by tests/web_e2e_settings.rs, which starts `cdrbox run` with simulated PBXs and gives:
//   CDRBOX_BASE     http://127.0.0.1:PORT of the box (a password is set: CDRBOX_PASS)
//   CDRBOX_CONFIG   the config file (read before and after each save)
//   CDRBOX_PLAN     JSON list: {path, table, key, label, restart, value, expect, shown} per form
//                   field (shown: what the form must show first, the file's value or default)
//   CDRBOX_RESULTS  where to write [{path, before, after}] for every save (the harness checks
//                   that each changed its key alone)
//   CDRBOX_SECRET   the PBX's real secret (re-entered where the page asks for it)
//   E2E_SCREENSHOTS directory for the screenshots (1366×768 and 390×844)
// For every field: change it alone, save, check the page said so, check calls keep arriving
// (or, for a PBX switched off / a wrong secret, that the box says so, then undo). Keys that need
// a restart are restarted from the page once per table. Then: remove the PBX and add it back.
// Any JavaScript error on the page fails the test.
import { readFileSync, writeFileSync } from 'node:fs';
import { withBrowser } from './lib.mjs';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(k + ' is not set'); return v; };
let base = env('CDRBOX_BASE');
const PASS = env('CDRBOX_PASS'), CONFIG = env('CDRBOX_CONFIG'), SECRET = env('CDRBOX_SECRET');
const plan = JSON.parse(env('CDRBOX_PLAN'));
const shots = process.env.E2E_SCREENSHOTS;
const saves = [];
const fail = (msg) => { throw new Error(msg); };
// Polls from Node (page.waitForFunction evaluates strings, which the page's CSP forbids).
async function until(what, cond, ms = 45000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) fail('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 200));
  }
}
const readConfig = () => readFileSync(CONFIG, 'utf8');

// What the page showed when it failed (its save and restart messages), for the log beside the
// screenshot.
const pageMessages = async (p) => ((await p.textContent('#settings-msg').catch(() => '')) || '') + ' / ' + ((await p.textContent('#restart-msg').catch(() => '')) || '');

withBrowser(shots, async (browser, errors) => {
  const dialogs = [];
  // The plan turns HTTPS on (a self-signed certificate): the browser goes on over https.
  const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 }, ignoreHTTPSErrors: true });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error' && !/display\.png|40[0-9]|Failed to load resource/.test(m.text())) errors.push('console: ' + m.text()); });
  // Dialogs are accepted, unless the test says to answer the next one with Cancel.
  let cancelNext = false;
  page.on('dialog', (d) => { dialogs.push(d.message()); if (cancelNext) { cancelNext = false; d.dismiss(); } else d.accept(); });

  // A kept-alive connection the box closed as idle just as the request went out fails with
  // "socket hang up" (a browser retries such a GET by itself; the API client does not).
  const apiJson = async (path) => {
    for (let attempt = 1; ; attempt++) {
      try {
        const r = await page.request.get(base + path, { headers: { 'X-Requested-With': 'cdrbox' } });
        return r.ok() ? r.json() : null;
      } catch (e) {
        if (attempt >= 3 || !/socket hang up|ECONNRESET/.test(String(e))) throw e;
        await new Promise((r) => setTimeout(r, 300));
      }
    }
  };
  const total = async () => { const d = await apiJson('/api/calls?limit=1'); return d ? d.total : -1; };
  const status = () => apiJson('/api/status');
  async function keepsRecording(what) {
    const t0 = await total();
    await until('new calls after ' + what, async () => (await total()) > t0);
  }
  async function login(navigate = true) {
    if (navigate) await page.goto(base + '/');
    try {
      await page.waitForURL(/\/login(#.*)?$/, { timeout: 90000 });
    } catch (e) {
      // The page's own reload can race the box's restart (net::ERR_ABORTED, a detached
      // frame): wait until the box answers again, then load the page as a user would.
      if (!/ERR_ABORTED|detached|ERR_CONNECTION|ERR_EMPTY_RESPONSE/.test(String(e))) throw e;
      console.log('note: reload raced the restart (' + String(e).split('\n')[0] + '); loading again');
      await until('the box answering after the restart', async () => {
        const r = await page.request.get(base + '/api/session', { headers: { 'X-Requested-With': 'cdrbox' } }).catch(() => null);
        return r && r.status() === 401;
      }, 90000);
      await page.goto(base + '/');
      await page.waitForURL(/\/login(#.*)?$/, { timeout: 90000 });
    }
    await page.locator('#login').waitFor({ state: 'visible' });
    await page.fill('#login-password', PASS);
    await Promise.all([page.waitForURL(base + '/'), page.click('#login button[type=submit]')]);
  }
  // A freshly loaded form (what the box has now), never a stale one still on screen.
  async function openSettings() {
    const old = page.locator('#settings-form [data-field="box.name"]');
    if (await old.count()) await old.evaluate((e) => { e.dataset.stale = '1'; });
    if (/#settings$/.test(page.url())) await page.click('a[data-tab=status]');
    await page.click('a[data-tab=settings]');
    await page.locator('#settings-form [data-field="box.name"]:not([data-stale])').waitFor();
  }
  const input = (path) => page.locator('#settings-form [data-field="' + path + '"]');
  async function reveal(loc) {
    // Fields under "Advanced" are folded away.
    const det = loc.locator('xpath=ancestor::details[1]');
    if (await det.count() && (await det.getAttribute('open')) === null) await det.locator('xpath=./summary').click();
  }
  async function setField(path, value) {
    const loc = input(path);
    await reveal(loc);
    const kind = await loc.getAttribute('data-kind');
    if (kind === 'bool') await loc.setChecked(value === true || value === 'true');
    else if (kind === 'choice') await loc.selectOption(String(value));
    else await loc.fill(String(value));
  }
  // Saves, waits for the page's answer, and keeps the file before/after for the harness.
  async function save(path, expectText = /Saved/) {
    const before = readConfig();
    await page.click('#settings-form button[type=submit]');
    let said = '';
    await until('the answer to saving ' + path, async () => expectText.test(said = (await page.textContent('#settings-msg')) || '')).catch((e) => fail(e.message + ' (the page says: ' + said + ')'));
    const after = readConfig();
    if (after === before) fail('saving ' + path + ' did not change the file');
    saves.push({ path, before, after });
  }
  async function restart(labels, newBase) {
    const card = page.locator('#settings-restart');
    await card.waitFor({ state: 'visible' });
    const text = await card.textContent();
    for (const l of labels) if (!text.includes(l)) fail('the restart notice does not list ' + l + ': ' + text);
    const t0 = (await status()).now_utc;
    await page.click('#restart-now');
    if (newBase) {
      // The page moves: wait for the new address (the session is gone, hence 401), go there.
      base = newBase;
      await until('the box on its new address', async () => {
        const r = await page.request.get(base + '/api/session', { headers: { 'X-Requested-With': 'cdrbox' } }).catch(() => null);
        return r && r.status() === 401;
      }, 90000);
      await login(true);
    } else {
      // The page polls and reloads itself once the box answers; the session is gone: login.
      await login(false);
    }
    await until('the PBX link up again', async () => { const s = await status(); return s && s.now_utc >= t0 && (s.links || []).some((l) => l.state === 'up'); }, 60000);
    await keepsRecording('the restart');
    await openSettings();
    if (await page.locator('#settings-restart').isVisible()) fail('changes still pending after the restart');
    console.log('ok: restarted for ' + labels.join(', '));
  }

  // 1. Log in; the form shows defaults as values, no horizontal overflow on a phone.
  await login();
  await keepsRecording('start');
  await openSettings();
  if (!(await input('pbx[0].enabled').isChecked())) fail('enabled (default true) is not shown ticked');
  if ((await input('storage.ring_kb').inputValue()) !== '32768') fail('ring_kb does not show its default 32768');
  // Every field shows what the file means: its value, or the default when the file leaves
  // the key out (a ticked box for a default true, never an empty field).
  for (const f of plan) {
    if (f.shown === null) continue;
    const loc = input(f.path);
    const got = (await loc.getAttribute('data-kind')) === 'bool' ? await loc.isChecked() : await loc.inputValue();
    if (String(got) !== String(f.shown)) fail(f.path + ' shows ' + JSON.stringify(got) + ' but the file means ' + JSON.stringify(f.shown));
  }
  const help = await page.locator('#settings-form .field small.help').allTextContents();
  if (help.some((h) => h.includes('`'))) fail('raw backticks in help text');
  if (shots) await page.screenshot({ path: shots + '/settings-1366.png', fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 0) fail('the settings page is ' + overflow + ' px wider than a 390 px phone');
  if (shots) {
    await page.screenshot({ path: shots + '/settings-390.png', fullPage: true });
    // Phone-sized pieces of the page, readable at full size.
    const height = await page.evaluate(() => document.documentElement.scrollHeight);
    for (let i = 0, y = 0; y < height && i < 8; i++, y += 844) await page.screenshot({ path: shots + '/settings-390-part' + (i + 1) + '.png', fullPage: true, clip: { x: 0, y, width: 390, height: Math.min(844, height - y) } });
  }
  // Inline check in plain words, before anything is sent.
  await setField('pbx[0].port', '70000');
  await page.click('#settings-form button[type=submit]');
  const err = await page.locator('.field.has-error .ferr').first().textContent();
  if (!/1–65535/.test(err) || /\.\.=/.test(err)) fail('inline message not in plain words: ' + err);
  if (shots) await page.screenshot({ path: shots + '/settings-390-error.png', fullPage: false });
  await page.setViewportSize({ width: 1366, height: 768 });
  await openSettings(); // a fresh form: the bad value is gone
  console.log('ok: defaults shown, no overflow at 390 px, plain-words inline check');

  // 2. Every field, alone.
  const tables = [...new Set(plan.map((p) => p.table))];
  for (const table of tables) {
    const restartLabels = [];
    let newBase = null;
    for (const f of plan.filter((p) => p.table === table)) {
      await openSettings();
      await setField(f.path, f.value);
      if (f.key === 'host' || f.key === 'auth') {
        // The page asks for the secret again before the stored one goes anywhere new.
        await page.click('#settings-form button[type=submit]');
        const msg = await input('pbx[0].secret').locator('xpath=ancestor::div[contains(@class,"field")][1]').locator('.ferr').textContent();
        if (!/Enter the secret again/.test(msg)) fail('no request to re-enter the secret for ' + f.path + ': ' + msg);
        await setField('pbx[0].secret', SECRET);
      }
      if (f.expect === 'off') {
        // Cancel in the confirmation: nothing saved, nothing stops.
        const before = readConfig(), n0 = dialogs.length;
        cancelNext = true;
        await page.click('#settings-form button[type=submit]');
        await until('the page saying nothing was saved', async () => /Not saved/.test((await page.textContent('#settings-msg')) || ''));
        if (dialogs.length !== n0 + 1) fail('switching the PBX off did not ask');
        if (readConfig() !== before) fail('cancelled switch-off changed the file');
        if ((await status()).alarms.some((a) => a.code === 'PBX OFF')) fail('cancelled switch-off raised PBX OFF');
        await keepsRecording('a cancelled switch-off');
      }
      const n = dialogs.length;
      await save(f.path, f.restart ? /Saved\. .* after a restart/ : /Saved and applied/);
      if (f.expect === 'off') {
        if (dialogs.length === n || !/Stop recording calls from PBX/.test(dialogs[n])) fail('switching the PBX off was not confirmed');
        await page.click('a[data-tab=status]');
        await until('the logging-is-off alarm on the status page', async () => /logging is off for PBX/.test((await page.textContent('#alarms')) || ''));
        const s = await status();
        if (!s.alarms.some((a) => a.code === 'PBX OFF')) fail('no PBX OFF alarm in /api/status (the OLED shows these codes)');
        await openSettings();
        await setField(f.path, true);
        await save(f.path);
        await until('the alarm cleared', async () => !(await status()).alarms.some((a) => a.code === 'PBX OFF'));
      } else if (f.expect === 'auth-failed') {
        await until('the box saying the login failed', async () => (await status()).links.some((l) => l.state === 'auth_failed'));
        await openSettings();
        await setField(f.path, SECRET);
        await save(f.path);
      }
      if (f.restart) restartLabels.push(f.label);
      else await keepsRecording(f.path);
      if (f.path === 'web.listen' && !newBase) newBase = 'http://' + f.value;
      // With HTTPS on, plain HTTP only redirects: the page lives on https_listen.
      if (f.path === 'web.https_listen' && plan.some((p) => p.path === 'web.https' && p.value === true)) newBase = 'https://' + f.value;
      console.log('ok: ' + f.path + ' = ' + JSON.stringify(f.value) + (f.restart ? ' (restart)' : ''));
    }
    if (restartLabels.length) { await keepsRecording(table + ' saved'); await restart(restartLabels, newBase); }
    if (plan.some((p) => p.table === table && p.expect === 'db-down')) {
      // cdr_db points at a closed port: the database problem is plain on the page and in
      // /api/status (the OLED shows these codes) while AMI recording goes on (checked above).
      await until('the DB DOWN alarm in /api/status', async () => (await status()).alarms.some((a) => a.code === 'DB DOWN' && (a.subject || '').startsWith('office')), 60000);
      await page.click('a[data-tab=status]');
      await until('the database problem on the status page', async () => /CDR database of office\S* .*failing.*DB DOWN/.test((await page.textContent('#cdrdb')) || '') && /DB DOWN/.test((await page.textContent('#alarms')) || ''), 60000);
      console.log('ok: the unreachable CDR database is DB DOWN on the page and in /api/status');
    }
  }

  // 3. Remove the PBX (confirmed, alarm), then add it back through the form.
  await openSettings();
  // Cancel first: the PBX stays in the form.
  cancelNext = true;
  await page.click('#settings-form button:text("Remove this PBX…")');
  if ((await input('pbx[0].name').count()) !== 1) fail('a cancelled removal removed the PBX from the form');
  const n = dialogs.length;
  await page.click('#settings-form button:text("Remove this PBX…")');
  if (!/Remove PBX/.test(dialogs[n] || '')) fail('removing the PBX was not confirmed');
  await save('pbx[0]');
  await page.click('a[data-tab=status]');
  await until('the removal alarm', async () => /logging is off for PBX .* removed/.test((await page.textContent('#alarms')) || ''));
  if (!(await status()).alarms.some((a) => a.code === 'PBX OFF' && /removed/.test(a.message))) fail('no PBX OFF alarm for the removal in /api/status');
  await openSettings();
  await page.click('#settings-form button:text("+ Add a PBX")');
  const port = plan.find((p) => p.path === 'pbx[0].port').value;
  for (const [k, v] of [['name', 'office'], ['host', '127.0.0.1'], ['port', port], ['username', 'cdrbox'], ['secret', SECRET]]) await setField('pbx[0].' + k, v);
  const beforeAdd = readConfig();
  await page.click('#settings-form button[type=submit]');
  // The removed PBX had CDR-database keys (restart keys) changed and the one added back has
  // their defaults: the page rightly says those wait for a restart; the AMI link is live.
  await until('the PBX added', async () => /Saved and applied|Saved\. .* after a restart/.test((await page.textContent('#settings-msg')) || ''));
  if (!/\[\[pbx\]\]/.test(readConfig()) || readConfig() === beforeAdd) fail('the added PBX is not in the file');
  await keepsRecording('adding the PBX back');
  console.log('ok: removed with confirmation and an alarm, added back, recording');

  if (errors.length) fail('page errors:\n' + errors.join('\n'));
  writeFileSync(env('CDRBOX_RESULTS'), JSON.stringify(saves.filter((s) => s.path !== 'pbx[0]')));
  console.log('e2e: all passed (' + saves.length + ' saves)');
}, pageMessages).catch((e) => { console.error('e2e FAILED:', e.message); process.exit(1); });
