// The page as a supervisor uses it, in headless Chromium at desktop (1366×768) and phone
// (390×844) widths (issue 13, items 1, 4, 9): no page scrolls sideways, every nav link and every
// calls-table column is on screen at 390 px, the calls page's totals equal the API's and the
// API's records equal the export's rows, one row per call with its records expandable, and the
// alarm strip stands on every page while an alarm does. Saves a screenshot of every page at
// both widths into $CDRBOX_E2E_SHOTS (look at them).
//
//   CDRBOX_E2E_CMD        `cdrbox demo …` (tests/web_e2e_people.rs sets it)
//   CDRBOX_E2E_CODE_FILE  where the one-time setup code is, when the banner does not print it
//   CDRBOX_E2E_SHOTS      directory for the screenshots
//   CHROMIUM              browser path (default /usr/bin/chromium)
import { fail, openSetup, pageGet, parseCsv, putPbx, runOnServer, submitSetup, until } from './lib.mjs';

const cmd = process.env.CDRBOX_E2E_CMD || '../../target/release/cdrbox demo --listen 127.0.0.1:0 --rate 2';
const shots = process.env.CDRBOX_E2E_SHOTS || '/tmp/cdrbox-people-shots';
const PASS = 'people-password-1';
const TABS = ['status', 'calls', 'stats', 'settings', 'setup'];
const WIDTHS = [[1366, 768], [390, 844]];

// A JSON GET from inside the page (lib's pageGet: its session cookie, retried).
const getJson = async (page, path) => JSON.parse(await pageGet(page, path));

async function getText(page, path) {
  return page.evaluate(async (p) => {
    const r = await fetch(p, { credentials: 'same-origin' });
    if (!r.ok) throw new Error(p + ': HTTP ' + r.status);
    return await r.text();
  }, path);
}

async function showTab(page, tab) {
  await page.click('a[data-tab=' + tab + ']');
  await until(tab + ' shown', async () => !(await page.locator('#tab-' + tab).isHidden()));
  // The tab's data has come when its own content exists.
  const ready = { status: '#links tbody tr', calls: '#calls tbody tr', stats: '#stats-kpis .kpi', settings: '#settings-form [data-field]', setup: '#checks li' }[tab];
  await page.locator(ready).first().waitFor();
}

async function noSidewaysScroll(page, what) {
  const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  if (scroll > width) fail(what + ': the page scrolls sideways (' + scroll + ' px wide in a ' + width + ' px window)');
}

const main = () => runOnServer(cmd, shots, async ({ page, base, code }) => {
  // First setup, as in web.e2e.mjs.
  await openSetup(page, base);
  await submitSetup(page, base, code, PASS);
  // Enough calls for several rows, some with more than one record.
  await until('calls with several records', async () => {
    const d = await getJson(page, '/api/calls?limit=500');
    return d.calls >= 6 && d.total > d.calls;
  }, 90000);
  console.log('ok: the demo made calls');

  // Calls are calls: a fixed range (up to now), so the page, the API and the export count
  // the same set while the demo goes on calling.
  // Not on a whole minute: Chromium writes a datetime-local value with :00 seconds back
  // without them, and Playwright's fill then fails with "Malformed value" (1 run in 60).
  let now = Date.now();
  if (Math.floor(now / 1000) % 60 === 0) now -= 1000;
  const moscow = new Date(now + 3 * 3600e3).toISOString().slice(0, 19);
  await showTab(page, 'calls');
  if (await page.locator('#filter-box').getAttribute('open') === null) await page.click('#filter-box summary');
  await page.fill('#filters input[name=to]', moscow);
  await page.selectOption('#filters select[name=limit]', '500');
  const q = 'to=' + encodeURIComponent(moscow.replace('T', ' '));
  // The set still grows after `to`: a simulated call is stamped when it ends, with its start
  // (what `to` filters) up to 30 min earlier, as on a real PBX. So page, API, stats and export
  // are read together until one reading agrees; a filter read differently by one of them (a
  // zone, an off-by-one) never agrees and times out.
  let api, seen = '';
  await until('page, API, stats and export to agree on the range', async () => {
    await page.click('#filters button[type=submit]');
    api = await getJson(page, '/api/calls?limit=500&' + q);
    const want = api.calls + ' calls match (' + api.total + ' records)';
    // Polled from Node: page.waitForFunction polls by evaluating a string in the page, which
    // the page's CSP refuses (a "pageerror" whenever the first check is not already true).
    let shown = '';
    for (let t = 0; t < 30 && shown !== want; t++) {
      shown = (await page.textContent('#calls-total')) || '';
      if (shown !== want) await new Promise((r) => setTimeout(r, 100));
    }
    if (shown !== want) { seen = 'page: ' + shown + ', API: ' + want; return false; }
    const csv = parseCsv(await getText(page, '/export.csv?profile=standard&' + q), ',');
    const stats = await getJson(page, '/api/stats?' + q);
    seen = 'export ' + (csv.length - 1) + ' rows, stats ' + stats.calls + ' calls / ' + stats.cdrs + ' records, API ' + api.calls + ' / ' + api.total;
    return csv.length - 1 === api.total && stats.calls === api.calls && stats.cdrs === api.total;
  }, 90000).catch((e) => fail(e.message + ' — last reading: ' + seen));
  const rows = await page.locator('#calls tbody tr.call').count();
  if (rows !== api.groups.length) fail('page shows ' + rows + ' call rows, the API ' + api.groups.length + ' calls');
  const legs = await page.locator('#calls tbody tr.leg').count();
  if (legs !== api.total) fail('page holds ' + legs + ' record rows, the API ' + api.total);
  console.log('ok: ' + api.calls + ' calls, ' + api.total + ' records: page = API = stats = export');

  // A call with several records opens to show them, and closes again.
  // The demo goes on making calls, and a call that ends now may have started inside the range:
  // the table can be redrawn between the reading and the click (t3: "opened 0 records of 2").
  // So each try reads the API again and clicks the row it names.
  const openLegs = () => page.locator('#calls tbody tr.leg:not([hidden])').count();
  let multi = -1, callRow, opened = 0, want = 0;
  for (let attempt = 0; attempt < 5; attempt++) {
    if (attempt) {
      await page.click('#filters button[type=submit]');
      await new Promise((r) => setTimeout(r, 500));
      api = await getJson(page, '/api/calls?limit=500&' + q);
    }
    multi = api.groups.findIndex((g) => g.legs.length > 1);
    if (multi < 0) fail('no call with several records in ' + JSON.stringify(api.groups.map((g) => g.legs.length)));
    want = api.groups[multi].legs.length;
    callRow = page.locator('#calls tbody tr.call').nth(multi);
    await callRow.locator('button.legs').click();
    opened = await openLegs();
    if (opened === want) break;
  }
  if (opened !== want) fail('opened ' + opened + ' records of ' + want);
  await callRow.locator('button.legs').click();
  if (await page.locator('#calls tbody tr.leg:not([hidden])').count()) fail('records stay open');
  console.log('ok: a call opens to its ' + opened + ' records');

  // An alarm: switch logging off for the PBX (PUT /api/config as the settings page does).
  const session = await getJson(page, '/api/session');
  await putPbx(page, session.csrf, { enabled: false }, 'switching the PBX off');

  // Missed calls to call back: the stats page's list is the API's for the same form values
  // (polled: with the PBX off no new call comes, but one may still be committing).
  await showTab(page, 'stats');
  let st = null;
  await until('the missed-calls list to equal the API', async () => {
    const from = await page.inputValue('#stats-form input[name=from]');
    const to = await page.inputValue('#stats-form input[name=to]');
    st = await getJson(page, '/api/stats?from=' + from + '&to=' + to + '&sla=20&callbackMinutes=60');
    await page.click('#stats-form button[type=submit]');
    const text = (await page.textContent('#missed-summary')) || '';
    const listed = await page.locator('#missed tbody tr').count();
    return text.startsWith(st.missedInbound + ' missed inbound calls, ' + st.calledBack + ' called back') && listed === Math.max(1, st.missedCalls.length);
  });
  console.log('ok: ' + st.missedInbound + ' missed inbound, ' + st.calledBack + ' called back: page = API');

  for (const [w, h] of WIDTHS) {
    await page.setViewportSize({ width: w, height: h });
    for (const tab of TABS) {
      await showTab(page, tab);
      // The strip stands on every page while the alarm does.
      await until('the alarm strip on ' + tab, async () => /PBX OFF/.test((await page.textContent('#alarms')) || ''));
      await noSidewaysScroll(page, tab + ' at ' + w + ' px');
      if (w < 600) {
        // Every nav link is on screen (the nav wraps, nothing cut at "Setup h…").
        for (const a of await page.locator('#nav a').all()) {
          const b = await a.boundingBox();
          if (!b || b.x < 0 || b.x + b.width > w) fail('nav link ' + (await a.textContent()) + ' is off screen: ' + JSON.stringify(b));
        }
      }
      if (tab === 'calls' && w < 600) {
        // Every column of a call row is on screen and says what it is.
        const cells = page.locator('#calls tbody tr.call').first().locator('td');
        const n = await cells.count();
        if (n !== 11) fail('a call row has ' + n + ' cells');
        for (let i = 0; i < n; i++) {
          const c = cells.nth(i);
          const b = await c.boundingBox();
          const label = await c.getAttribute('data-label');
          if (!label) fail('calls column ' + i + ' has no label at phone width');
          if (!b || b.x < 0 || b.x + b.width > w) fail('calls column ' + label + ' is off screen: ' + JSON.stringify(b));
        }
      }
      await page.screenshot({ path: shots + '/' + w + '-' + tab + '.png', fullPage: true });
      await page.screenshot({ path: shots + '/' + w + '-' + tab + '-top.png' });
    }
    console.log('ok: ' + w + ' px: every page fits, alarm strip on each; screenshots in ' + shots);
  }
});

main().catch((e) => { console.error('e2e FAILED:', e.message); process.exit(1); });
