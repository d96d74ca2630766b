// Login and first-setup page. No inline scripts (CSP): everything is wired here.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const say = (t) => { $('message').textContent = t || ''; };
  async function post(path, body) {
    const r = await fetch(path, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-Requested-With': 'cdrbox' },
      body: JSON.stringify(body),
    });
    let data = {};
    try { data = await r.json(); } catch (e) { /* empty body */ }
    return { ok: r.ok, status: r.status, data };
  }
  async function start() {
    let needsSetup = false;
    try {
      const r = await fetch('/api/setup', { headers: { 'X-Requested-With': 'cdrbox' } });
      needsSetup = (await r.json()).needsSetup;
    } catch (e) { say('Cannot reach the box.'); }
    $(needsSetup ? 'setup' : 'login').hidden = false;
    (needsSetup ? $('setup-code') : $('login-password')).focus();
  }
  $('setup').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const p = $('setup-password').value;
    if (p !== $('setup-again').value) { say('The two passwords differ.'); return; }
    const r = await post('/api/setup', { code: $('setup-code').value, password: p });
    if (r.ok) { location.href = '/'; } else { say(r.data.error || ('Error ' + r.status)); }
  });
  $('login').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await post('/api/login', { user: $('login-user').value, password: $('login-password').value });
    if (r.ok) { location.href = '/'; } else { say(r.data.error || ('Error ' + r.status)); }
  });
  start();
})();
