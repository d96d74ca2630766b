// Every page and every view of the web UI in headless Chromium at 1366×768 and 390×844 (issue 13,
// item 9): the login and first-setup forms, status (with the PBX off, so its alarm strip and link
// reason show), calls (filters open, a call's records open, the downloads bar), stats (missed
// calls, trend table open), settings (every "Advanced" open) and setup help. On each: nothing
// scrolls sideways (document.scrollingElement.scrollWidth <= innerWidth; the elements that stick
// out are named), no table or <pre> is wider than its box (a column cut off inside a scroll box
// is as hidden as one off the screen), and at 390 px every cell of a call row and of a record row is on screen. Saves
// one full-page screenshot per view per width into $CDRBOX_E2E_SHOTS — look at them; nothing
// compares pixels. Counting is web_e2e_people's and web_e2e_stats's job; this one is about fit,
// so it waits only for the first call.
//
//   CDRBOX_E2E_CMD        `cdrbox demo …` (tests/web_e2e_all_pages.rs sets it)
//   CDRBOX_E2E_CODE_FILE  where the one-time setup code is, when the banner does not print it
//   CDRBOX_E2E_SHOTS      directory for the screenshots
//   CHROMIUM              browser path (default /usr/bin/chromium)
import { fail, openSetup, pageGet, putPbx, runOnServer, submitSetup, until } from './lib.mjs';

const cmd = process.env.CDRBOX_E2E_CMD || '../../target/release/cdrbox demo --listen 127.0.0.1:0 --rate 4';
const shots = process.env.CDRBOX_E2E_SHOTS || '/tmp/cdrbox-all-pages';
const PASS = 'all-pages-password-1';
const WIDTHS = [[1366, 768], [390, 844]];

// No sideways scroll; when there is, the widest offenders are named so the fix is findable.
async function fits(page, what) {
  const r = await page.evaluate(() => {
    const width = window.innerWidth;
    const scroll = document.scrollingElement.scrollWidth;
    const out = [];
    if (scroll > width) {
      for (const e of document.querySelectorAll('body *')) {
        const b = e.getBoundingClientRect();
        if (b.width && b.right > width + 0.5 && e.offsetParent !== null) {
          out.push(e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\s+/).join('.') : '') + ' right=' + Math.round(b.right));
        }
      }
    }
    // A table in its own scroll box that is wider than the box hides columns too: at 1366 px
    // the calls table's Records and the links table's Reconnects were cut that way.
    const boxes = [];
    // The same for text in a <pre> (the setup snippets' lines were cut at 390 px).
    for (const e of document.querySelectorAll('.scroll, pre')) {
      if (e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1) {
        const t = e.querySelector('table');
        boxes.push((t && t.id ? 'table#' + t.id : e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + ' box') + ' ' + e.scrollWidth + ' px in ' + e.clientWidth);
      }
    }
    return { width, scroll, out: out.slice(0, 12), boxes };
  });
  if (r.scroll > r.width) fail(what + ': the page scrolls sideways (' + r.scroll + ' px in a ' + r.width + ' px window); sticking out: ' + r.out.join(', '));
  if (r.boxes.length) fail(what + ': a table is cut (scrolls inside its card): ' + r.boxes.join(', '));
}

let views = 0;
async function shot(page, w, name) {
  views++;
  await fits(page, name + ' at ' + w + ' px');
  await page.screenshot({ path: shots + '/' + w + '-' + name + '.png', fullPage: true });
}

async function showTab(page, tab) {
  await page.click('a[data-tab=' + tab + ']');
  await until(tab + ' shown', async () => !(await page.locator('#tab-' + tab).isHidden()));
  const ready = { status: '#links tbody tr', calls: '#calls tbody tr.call', stats: '#stats-kpis .kpi', settings: '#settings-form [data-field]', setup: '#checks li' }[tab];
  await page.locator(ready).first().waitFor();
}

// Every cell of the row is on screen at phone width and labelled with its column.
async function cellsOnScreen(row, w, what) {
  const cells = row.locator('td');
  const n = await cells.count();
  if (n < 2) fail(what + ' has ' + n + ' cells');
  for (let i = 0; i < n; i++) {
    const c = cells.nth(i);
    const b = await c.boundingBox();
    const label = await c.getAttribute('data-label');
    if (!label) fail(what + ': column ' + i + ' has no label at phone width');
    if (!b || b.x < 0 || b.x + b.width > w) fail(what + ': column ' + label + ' is off screen: ' + JSON.stringify(b));
  }
  return n;
}

const main = () => runOnServer(cmd, shots, async ({ page, base, code }) => {
  const t0 = Date.now();

  // The first-setup form, at both widths, before anyone has a password.
  await openSetup(page, base);
  for (const [w, h] of WIDTHS) {
    await page.setViewportSize({ width: w, height: h });
    await shot(page, w, 'first-setup');
  }
  await page.setViewportSize({ width: 1366, height: 768 });
  await submitSetup(page, base, code, PASS);
  await until('a call', async () => JSON.parse(await pageGet(page, '/api/calls?limit=5')).calls >= 1, 60000);

  // Settings changed as the settings page does (PUT /api/config, applied live).
  const session = JSON.parse(await pageGet(page, '/api/session'));


  // A PBX the box cannot reach: the link row holds the whole error, which must wrap beside its
  // pill instead of pushing the table off a phone (issue 13, "PBX down").
  await putPbx(page, session.csrf, { host: 'pbx-that-nobody-has-set-up-yet.invalid', secret: 'demo-secret' }, 'pointing the PBX at a missing host');
  await showTab(page, 'status');
  await page.locator('#links td.state .reason').first().waitFor({ timeout: 30000 });
  for (const [w, h] of WIDTHS) {
    await page.setViewportSize({ width: w, height: h });
    await shot(page, w, 'status-link-error');
  }
  await page.setViewportSize({ width: 1366, height: 768 });
  console.log('ok: a link error fits: ' + (await page.textContent('#links td.state .reason')));

  // The PBX off: an alarm stands, so every page shows its strip (its fit matters most on a phone).
  await putPbx(page, session.csrf, { enabled: false, host: '127.0.0.1', secret: 'demo-secret' }, 'switching the PBX off');
  await until('the alarm strip', async () => /PBX OFF/.test((await page.textContent('#alarms')) || ''));

  // "Calls" means one thing: the status page's calls today are the stats page's for today
  // (polled: with the PBX off no call starts, but one may still be committing).
  let seen = '';
  await until('status today = stats today', async () => {
    await showTab(page, 'stats');
    const from = await page.inputValue('#stats-form input[name=from]');
    const to = await page.inputValue('#stats-form input[name=to]');
    const stats = JSON.parse(await pageGet(page, '/api/stats?from=' + from + '&to=' + to));
    const status = JSON.parse(await pageGet(page, '/api/status'));
    seen = 'status ' + JSON.stringify(status.today) + ', stats ' + stats.calls + ' calls (' + stats.answered + ' answered, ' + stats.missed + ' missed) ' + from + '..' + to;
    return status.today.total === stats.calls && status.today.answered === stats.answered && status.today.missed === stats.missed;
  }).catch((e) => fail(e.message + ' — last reading: ' + seen));
  console.log('ok: ' + seen);

  // Bookmarkable: a filtered calls view is in the address and survives a reload.
  await showTab(page, 'calls');
  if (await page.locator('#filter-box').getAttribute('open') === null) await page.click('#filter-box summary');
  const inbound = '#filters input[name=direction][value=inbound]';
  await page.check(inbound);
  await page.click('#filters button[type=submit]');
  await until('the filter in the address', async () => /direction=inbound/.test(await page.evaluate(() => location.hash)));
  await page.reload();
  await page.locator('#calls-total').waitFor();
  if (!(await page.isChecked(inbound))) fail('a reload lost direction=inbound');
  await until('the reloaded page to count inbound calls only', async () => {
    const api = JSON.parse(await pageGet(page, '/api/calls?limit=50&direction=inbound'));
    seen = 'page: ' + (await page.textContent('#calls-total')) + ', API: ' + api.calls + ' calls';
    return ((await page.textContent('#calls-total')) || '').startsWith(api.calls + ' calls match');
  }).catch((e) => fail(e.message + ' — last reading: ' + seen));
  if (await page.locator('#filter-box').getAttribute('open') === null) await page.click('#filter-box summary');
  await page.uncheck(inbound);
  await page.click('#filters button[type=submit]');
  await until('the filter gone from the address', async () => !/direction=/.test(await page.evaluate(() => location.hash)));
  console.log('ok: ' + seen + ', kept on reload');

  for (const [w, h] of WIDTHS) {
    await page.setViewportSize({ width: w, height: h });

    await showTab(page, 'status');
    await shot(page, w, 'status');

    await showTab(page, 'calls');
    if (await page.locator('#filter-box').getAttribute('open') !== null) await page.click('#filter-box summary');
    await shot(page, w, 'calls');
    if (w < 600) {
      const n = await cellsOnScreen(page.locator('#calls tbody tr.call').first(), w, 'a call row');
      // A call's records, opened: each record row fits too.
      const row = page.locator('#calls tbody tr.call').first();
      await row.locator('button.legs').click();
      const leg = page.locator('#calls tbody tr.leg:not([hidden])').first();
      await leg.waitFor();
      await cellsOnScreen(leg, w, 'a record row');
      await shot(page, w, 'calls-records-open');
      await row.locator('button.legs').click();
      console.log('ok: all ' + n + ' columns of a call row and of its record on screen at ' + w + ' px');
    }
    await page.click('#filter-box summary');
    await page.locator('#filters').waitFor({ state: 'visible' });
    await shot(page, w, 'calls-filters');
    await page.click('#filter-box summary');

    await showTab(page, 'stats');
    if (await page.locator('#trend-details').getAttribute('open') === null) await page.click('#trend-details summary');
    await page.locator('#trend-table').waitFor({ state: 'visible' });
    await shot(page, w, 'stats');
    await page.click('#trend-details summary');

    await showTab(page, 'settings');
    // Every "Advanced" group open: the long keys and help texts are there.
    // (One at a time: an opened one leaves the :not([open]) list.)
    const closed = page.locator('#settings-form details.advanced:not([open]) > summary');
    for (let n = await closed.count(); n > 0; n--) await closed.first().click();
    if (await closed.count()) fail('an Advanced group stays closed');
    await shot(page, w, 'settings');

    await showTab(page, 'setup');
    await shot(page, w, 'setup-help');
    console.log('ok: ' + w + ' px: status, calls, stats, settings and setup help fit');
  }

  // The login form, at both widths, after logging out.
  await page.setViewportSize({ width: 1366, height: 768 });
  await Promise.all([page.waitForURL(/\/login$/), page.click('#logout')]);
  await page.locator('#login').waitFor({ state: 'visible' });
  for (const [w, h] of WIDTHS) {
    await page.setViewportSize({ width: w, height: h });
    await shot(page, w, 'login');
  }
  console.log('ok: ' + views + ' views fit; screenshots in ' + shots + ' (' + Math.round((Date.now() - t0) / 1000) + ' s)');
});

main().catch((e) => { console.error('e2e FAILED:', e.message); process.exit(1); });
