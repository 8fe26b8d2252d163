// The dashboard's shell: hash router, header (search, live height, language), the live stream
// and the readiness flag the browser tests wait on.
//
// A view module exports `create(ctx)` returning a controller:
//   { el,                      the view's root element (put into <main> at once)
//     title,                   i18n key of the page title
//     load(signal, {live}),    fetches and renders; called once, then again on live events
//     live: ['block', …],      stream events that should refresh it (at most once a second)
//     destroy() }              optional: charts, timers
// ctx = { params, app, reason ('route' | 'lang') , signal }.
// Views are re-created when the language changes; they keep what must survive (a chosen day,
// a verification result) in their own module.

import { get, isAbort } from './api.js';
import { h, route } from './dom.js';
import { getLang, setLang, t, translateStatic } from './i18n.js';
import * as format from './format.js';
import * as overview from '../views/overview.js';
import * as consumer from '../views/consumer.js';
import * as market from '../views/market.js';
import * as trace from '../views/trace.js';
import * as ledger from '../views/ledger.js';
import * as block from '../views/block.js';
import * as tx from '../views/tx.js';
import * as fleet from '../views/fleet.js';
import * as certificate from '../views/certificate.js';
import * as missing from '../views/missing.js';

const ROUTES = [
  { nav: 'overview', re: /^$/, view: overview },
  { nav: 'consumer', re: /^consumer\/([^/]+)(?:\/([^/]+))?$/, keys: ['participant', 'site'], view: consumer },
  { nav: 'market', re: /^market(?:\/([^/]+))?$/, keys: ['market'], view: market },
  { nav: 'trace', re: /^trace(?:\/(.+))?$/, keys: ['ident'], view: trace },
  { nav: 'ledger', re: /^ledger$/, view: ledger },
  { nav: 'ledger', re: /^block\/(\d+)$/, keys: ['height'], view: block },
  { nav: 'ledger', re: /^tx\/([0-9a-fA-F]{64})$/, keys: ['hash'], view: tx },
  { nav: 'fleet', re: /^fleet$/, view: fleet },
  { nav: 'market', re: /^certificate\/([^/]+)$/, keys: ['id'], view: certificate },
];

/** What every view may use: the chain's info (height kept current by the stream) and recent events. */
export const app = {
  info: null,
  events: [], // newest first, at most 30: {type, data, at}
  navigate(hash) {
    if (location.hash === hash) show('route');
    else location.hash = hash;
  },
  // A view's own later work (a day picked, a page of a table): tracked for crevReady, and an
  // error shows in the page like a failed load.
  run: (work) => guarded(current, work),
  reload: () => (current ? runLoad(current, true) : Promise.resolve()),
  rememberConsumer: (hash) => rememberConsumer(hash),
};

// --- readiness --------------------------------------------------------------------------------

let loading = 0;
window.crevReady = false;

async function tracked(work) {
  loading += 1;
  window.crevReady = false;
  try {
    return await work();
  } finally {
    loading -= 1;
    if (loading === 0) window.crevReady = true;
  }
}

// --- routing ----------------------------------------------------------------------------------

const main = document.getElementById('view');
let current = null; // {ctrl, abort, nav}

function match() {
  const path = location.hash.replace(/^#\/?/, '').replace(/\/+$/, '');
  for (const r of ROUTES) {
    const m = r.re.exec(path);
    if (!m) continue;
    const params = {};
    (r.keys || []).forEach((k, i) => {
      if (m[i + 1] !== undefined) {
        try { params[k] = decodeURIComponent(m[i + 1]); } catch { params[k] = m[i + 1]; }
      }
    });
    return { r, params };
  }
  return { r: { nav: '', view: missing }, params: { path } };
}

function show(reason) {
  if (current) {
    current.abort.abort();
    if (current.ctrl.destroy) current.ctrl.destroy();
  }
  cancelRefresh();
  const { r, params } = match();
  const abort = new AbortController();
  const ctrl = r.view.create({ params, app, reason, signal: abort.signal });
  current = { ctrl, abort, nav: r.nav };
  main.replaceChildren(ctrl.el);
  document.title = `${t(ctrl.title || 'app.title')} · crev`;
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', a.dataset.nav === r.nav);
  }
  if (reason === 'route') window.scrollTo(0, 0);
  const search = document.getElementById('search-input');
  if (document.activeElement !== search) {
    // the box shows what the explorer traces, and nothing left over on other pages
    search.value = r.view === trace && params.ident ? params.ident : '';
  }
  return runLoad(current, false);
}

function runLoad(cur, live) {
  return guarded(cur, () => cur.ctrl.load(cur.abort.signal, { live }));
}

/**
 * Runs a view's work while crevReady is false. An error the view did not handle shows as one
 * box in the page (not in the console); the view keeps what it showed before, and the box goes
 * away with the next success.
 */
function guarded(cur, work) {
  return tracked(async () => {
    if (!cur) return;
    try {
      await work();
      if (cur.errorEl) { cur.errorEl.remove(); cur.errorEl = null; }
    } catch (e) {
      if (isAbort(e) || cur.abort.signal.aborted) return;
      if (cur.errorEl) cur.errorEl.remove();
      cur.errorEl = errorBox(e);
      cur.ctrl.el.prepend(cur.errorEl);
    }
  });
}

function errorBox(e) {
  return h('div', { class: 'notice error', role: 'alert' },
    h('strong', {}, t('error.title')), ' ',
    e && e.status ? `${e.status} ${e.code}: ${e.reason}` : String((e && e.message) || e));
}

// --- live refresh, at most once a second ---------------------------------------------------------

const refresh = { timer: null, inflight: false, dirty: false, last: 0 };

function cancelRefresh() {
  clearTimeout(refresh.timer);
  refresh.timer = null;
  refresh.dirty = false;
}

function scheduleRefresh() {
  if (refresh.inflight) { refresh.dirty = true; return; }
  if (refresh.timer) return;
  const wait = Math.max(0, refresh.last + 1000 - Date.now());
  refresh.timer = setTimeout(async () => {
    refresh.timer = null;
    const cur = current;
    if (!cur) return;
    refresh.inflight = true;
    refresh.last = Date.now();
    try {
      await runLoad(cur, true);
    } finally {
      refresh.inflight = false;
      if (refresh.dirty && cur === current) { refresh.dirty = false; scheduleRefresh(); }
    }
  }, wait);
}

function onEvent(type, data) {
  app.events.unshift({ type, data, at: Date.now() });
  app.events.length = Math.min(app.events.length, 30);
  if (current && (current.ctrl.live || []).includes(type)) scheduleRefresh();
}

// --- header: live height, stream, search, language ---------------------------------------------

const liveBox = document.getElementById('live');
const liveHeight = document.querySelector('[data-testid=live-height]');

function setHeight(height, timeJst) {
  if (!Number.isInteger(height)) return;
  if (app.info && height < app.info.height) return; // events may repeat after a reconnect
  if (app.info) app.info.height = height;
  liveHeight.dataset.value = String(height);
  liveHeight.textContent = `#${height}`; // a height is an id: no digit grouping
  if (timeJst) liveBox.title = `${t('live.last')}: ${format.jst(timeJst)}`;
}

function setLive(status) {
  liveBox.dataset.status = status;
  liveBox.setAttribute('aria-label', t(`live.${status}`));
}

let stream = null;

function connect() {
  if (stream) stream.close();
  stream = new EventSource('/v1/stream');
  const on = (type, fn) => stream.addEventListener(type, (e) => {
    let data = null;
    try { data = JSON.parse(e.data); } catch { return; }
    fn(data);
  });
  stream.onopen = () => setLive('live');
  stream.onerror = () => setLive('reconnecting'); // EventSource retries by itself
  on('hello', (d) => setHeight(d.height, d.time_jst));
  on('block', (d) => {
    if (app.info && d.time) app.info.last_time = d.time;
    setHeight(d.height, d.time_jst);
    onEvent('block', d);
  });
  for (const type of ['issued', 'trade', 'retired']) on(type, (d) => onEvent(type, d));
  // The server drops a subscriber that fell behind; come back with a fresh stream.
  stream.addEventListener('dropped', () => { stream.close(); setLive('reconnecting'); setTimeout(connect, 1000); });
}

document.getElementById('search').addEventListener('submit', (e) => {
  e.preventDefault();
  const q = document.getElementById('search-input').value.trim();
  if (q) app.navigate(route('trace', q));
});

function applyLanguage() {
  const lang = getLang();
  document.documentElement.lang = lang;
  translateStatic(document);
  for (const s of document.querySelectorAll('#lang-toggle [data-lang]')) {
    s.classList.toggle('on', s.dataset.lang === lang);
  }
  setLive(liveBox.dataset.status || 'connecting');
}

document.getElementById('lang-toggle').addEventListener('click', () => {
  setLang(getLang() === 'ja' ? 'en' : 'ja');
  applyLanguage();
  show('lang');
});

/** The nav's "Consumer" link goes to the consumer last looked at. */
function rememberConsumer(hash) {
  try { localStorage.setItem('crev.consumer', hash); } catch { /* private mode */ }
  document.getElementById('nav-consumer').setAttribute('href', hash);
}

// --- start --------------------------------------------------------------------------------------

async function start() {
  applyLanguage();
  try {
    const saved = localStorage.getItem('crev.consumer');
    if (saved) document.getElementById('nav-consumer').setAttribute('href', saved);
  } catch { /* private mode */ }
  // One tracked block, so crevReady stays false from the first byte until the first view is drawn.
  await tracked(async () => {
    try {
      app.info = await get('/v1/info');
      setHeight(app.info.height, app.info.last_time_jst);
    } catch (e) {
      main.replaceChildren(errorBox(e));
      return;
    }
    connect();
    window.addEventListener('hashchange', () => show('route'));
    await show('route');
  });
}

start();
