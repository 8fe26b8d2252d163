// "#/trace[/{ident}]": the traceability explorer. A lot id, unit id, retirement id or transaction
// hash → GET /v1/trace/{ident} → a timeline per lot from the signed reading through issuance,
// transfers and trades to retirement, each step with its block and transaction. "Verify" checks
// every proof in the browser (js/verify.js) and shows each check where it belongs.

import { get, seg } from '../js/api.js';
import { fields, fill, h, link, route, table } from '../js/dom.js';
import { fromHex } from '../js/bytes.js';
import { decodeHeader } from '../js/cbor.js';
import * as f from '../js/format.js';
import { t } from '../js/i18n.js';
import { verifyTrace } from '../js/verify.js';
import { finalityBadge } from './site.js';

const OPEN_LOTS = 3; // lots shown expanded; the rest are one click away
const cache = { ident: null, data: null, result: null }; // survives a language change

export function create({ params, app, reason }) {
  const ident = params.ident ? params.ident.trim() : '';
  const el = h('section', { class: 'page' });
  if (reason !== 'lang' || cache.ident !== ident) Object.assign(cache, { ident: null, data: null, result: null });

  return {
    el,
    title: 'trace.title',
    async load(signal) {
      if (!ident) {
        await intro(el, signal);
        return;
      }
      let data = cache.data;
      if (!data) {
        fill(el, head(ident), h('p', { class: 'muted' }, t('trace.loading')));
        try {
          data = await get(`/v1/trace/${seg(ident)}`, { signal });
        } catch (e) {
          if (e.status === 404 || e.status === 400) {
            fill(el, head(ident), h('div', { class: 'notice warn', testid: 'search-not-found', role: 'status' },
              h('strong', {}, t('trace.not_found', { ident })), h('div', { class: 'muted' }, e.reason || ''),
              h('div', { class: 'small' }, t('trace.formats'))));
            return;
          }
          throw e;
        }
        Object.assign(cache, { ident, data, result: null });
      }
      const view = render(ident, data, app);
      fill(el, view.root);
      if (cache.result) view.apply(cache.result);
    },
  };
}

function head(ident, kind) {
  return h('div', { class: 'page-head' },
    h('h1', {}, t('trace.title'), kind ? h('span', { class: 'badge big' }, t(`trace.kind.${kind}`)) : null),
    h('p', { class: 'lead' }, h('code', {}, ident)));
}

/** Without an id: what can be searched, with real examples from this ledger. */
async function intro(el, signal) {
  const [rets, lots] = await Promise.all([get('/v1/retirements?limit=3', { signal }), get('/v1/lots?limit=3', { signal })]);
  const examples = [
    ...rets.items.map((r) => [t('trace.kind.retirement'), r.retirement_id]),
    ...lots.items.map((l) => [t('trace.kind.lot'), l.lot_id]),
    ...lots.items.slice(0, 1).map((l) => [t('trace.kind.unit'), String(l.first_unit)]),
    ...lots.items.slice(0, 1).map((l) => [t('trace.kind.tx'), l.tx_hash]),
  ];
  fill(el,
    h('div', { class: 'page-head' }, h('h1', {}, t('trace.title')), h('p', { class: 'lead' }, t('trace.lead'))),
    h('section', { class: 'card' }, h('h2', {}, t('trace.how')),
      h('p', {}, t('trace.formats')),
      h('p', {}, t('trace.use_search')),
      h('h3', {}, t('trace.examples')),
      h('ul', { class: 'plain examples' }, examples.map(([kind, id]) => h('li', {},
        h('span', { class: 'badge' }, kind), ' ', link(route('trace', id), h('code', {}, id)))))),
    h('section', { class: 'card' }, h('h2', {}, t('trace.what_verify')),
      h('ol', {}, ['trace.v1', 'trace.v2', 'trace.v3', 'trace.v4'].map((k) => h('li', {}, t(k))))));
}

/** The whole trace page for one answer; returns {root, apply(result)}. */
function render(ident, data, app) {
  const slots = new Map(); // where → {box: checks container, badge: element to mark, open: details to open}
  const slot = (where, badge, open = null) => {
    const box = h('ul', { class: 'checks' });
    const wrap = h('details', { class: 'step-checks', hidden: true }, h('summary', {}, t('verify.checks')), box);
    slots.set(where, { box, wrap, badge, open });
    return wrap;
  };

  const lots = data.lots || [];
  const traced = lots.reduce((n, l) => n + (l.quantity_g_traced || 0), 0);
  const summary = h('section', { class: 'card' }, fields([
    [t('trace.query'), h('code', {}, data.query || ident)],
    [t('trace.kind_label'), t(`trace.kind.${data.kind}`)],
    lots.length ? [t('trace.lots'), f.int(lots.length)] : null,
    lots.length ? [t('trace.traced'), f.grams(traced)] : null,
    [t('trace.blocks'), f.int(Object.keys(data.blocks || {}).length)],
    [t('trace.at_height'), link(route('block', data.height), `#${data.height}`)],
  ], 'fields cols'));

  // --- the verify panel -------------------------------------------------------------------------
  const result = h('div', { class: 'verify-result', testid: 'verify-result', hidden: true, role: 'status' });
  const failures = h('ol', { class: 'failures' });
  const button = h('button', { type: 'button', class: 'btn primary', testid: 'verify-button' }, t('verify.button'));
  const panel = h('section', { class: 'card verify' },
    h('div', { class: 'card-head' }, h('div', {}, h('h2', {}, t('verify.title')), h('p', { class: 'muted small' }, t('verify.lead'))), button),
    result, failures);

  function apply(res) {
    for (const s of slots.values()) { fill(s.box); s.wrap.hidden = true; if (s.badge) s.badge.dataset.status = ''; }
    const by = new Map();
    for (const c of res.checks) {
      if (!by.has(c.where)) by.set(c.where, []);
      by.get(c.where).push(c);
    }
    for (const [where, list] of by) {
      const s = slots.get(where) || slots.get('trace');
      fill(s.box, list.map(checkRow));
      s.wrap.hidden = false;
      const ok = list.every((c) => c.ok);
      if (s.badge) {
        s.badge.dataset.status = ok ? 'pass' : 'fail';
        s.badge.textContent = ok ? `✓ ${t('verify.step_ok')}` : `✗ ${t('verify.step_fail')}`;
      }
      if (!ok) {
        s.wrap.open = true;
        if (s.open) s.open.open = true;
      }
    }
    result.hidden = false;
    result.dataset.status = res.ok ? 'pass' : 'fail';
    fill(result, h('strong', {}, res.ok ? `✓ ${t('verify.pass')}` : `✗ ${t('verify.fail')}`), ' ',
      t('verify.counts', { passed: f.int(res.passed), failed: f.int(res.failed) }));
    const bad = res.checks.filter((c) => !c.ok);
    fill(failures, bad.slice(0, 20).map((c) => h('li', {}, h('span', { class: 'where' }, whereText(c.where, lots)), ': ',
      t(c.label[0], c.label[1]), ' — ', reasonText(c.reason))),
    bad.length > 20 ? h('li', { class: 'muted' }, t('verify.more', { n: bad.length - 20 })) : null);
  }

  button.addEventListener('click', () => {
    button.disabled = true;
    result.hidden = false;
    result.dataset.status = 'running';
    fill(result, t('verify.running'));
    fill(failures);
    app.run(async () => {
      try {
        const res = await verifyTrace(data, app.info, (done, total) => {
          fill(result, t('verify.progress', { done: f.int(done), total: f.int(total) }));
        });
        cache.result = res;
        apply(res);
      } catch (e) {
        result.dataset.status = 'fail';
        fill(result, `✗ ${t('verify.error')}: ${e.message}`);
      } finally {
        button.disabled = false;
      }
    });
  });

  // --- retirement / transaction ------------------------------------------------------------------
  const extra = [];
  const ret = data.retirement;
  if (ret) {
    const badge = h('span', { class: 'verdict' });
    extra.push(h('section', { class: 'card retirement' },
      h('div', { class: 'card-head' }, h('h2', {}, t('trace.retirement'), ' ', h('code', {}, ret.retirement_id), ' ', badge),
        h('div', { class: 'btn-row' },
          h('a', { class: 'btn', href: route('certificate', ret.retirement_id) }, t('trace.certificate')),
          h('a', { class: 'btn', href: `/v1/retirements/${seg(ret.retirement_id)}/certificate.pdf` }, 'PDF'))),
      fields([
        [t('cert.beneficiary'), h('strong', {}, ret.beneficiary)],
        [t('cert.account'), ret.account],
        [t('cert.purpose'), t(`purpose.${ret.purpose}`)],
        [t('cert.period'), `${ret.period.first_day_jst} – ${ret.period.last_day_jst}`],
        [t('col.quantity_g'), f.grams(ret.quantity_g)],
        [t('cert.retired_at'), f.jst(ret.retired_at_jst)],
        [t('col.block'), link(route('block', ret.height), `#${ret.height}`)],
        [t('col.tx'), link(route('tx', ret.tx_hash), h('code', {}, f.hash(ret.tx_hash, 16)))],
        ret.state_proof ? [t('trace.state_proof'), stateProofText(ret.state_proof)] : null,
      ], 'fields cols'),
      slot('retirement', badge)));
  }
  const tx = data.transaction;
  if (tx) {
    const badge = h('span', { class: 'verdict' });
    extra.push(h('ol', { class: 'timeline' }, h('li', { class: 'step', testid: 'trace-step', 'data-step': 'transaction' },
      h('div', { class: 'step-head' }, h('span', { class: 'step-name' }, t(`kind.${tx.kind}`)), badge,
        stepLinks(tx.height, tx.tx_hash, tx.proof && tx.proof.block_time)),
      fields([
        [t('col.signer'), tx.signer || t('tx.unsigned')],
        [t('col.result'), tx.ok ? t('tx.ok') : `${t('tx.failed')}: ${tx.error}`],
        [t('tx.events'), f.int((tx.events || []).length)],
        [t('tx.position'), t('tx.position_of', { i: tx.index, n: tx.proof ? tx.proof.size : '?' })],
      ]),
      slot('tx', badge))));
  }

  // --- blocks -----------------------------------------------------------------------------------
  const heights = Object.keys(data.blocks || {}).map(Number).sort((a, b) => a - b);
  const blocksBox = h('details', { class: 'card blocks' });
  blocksBox.append(
    h('summary', {}, h('h2', {}, t('trace.headers', { n: heights.length }))),
    h('p', { class: 'muted small' }, t('trace.headers_note')),
    h('ul', { class: 'plain block-list' }, heights.map((height) => {
      const b = data.blocks[height];
      const badge = h('span', { class: 'verdict' });
      let time = '';
      try { time = f.time(Number(decodeHeader(fromHex(b.header)).time)); } catch { time = '?'; }
      return h('li', {}, link(route('block', height), `#${height}`), ' ', h('code', { class: 'muted' }, f.hash(b.hash, 16)), ' ',
        h('span', { class: 'muted small' }, time), ' ', badge, slot(`block:${height}`, badge, blocksBox));
    })));
  slots.set('trace', slots.get('retirement') || slots.get('tx') || { box: h('ul'), wrap: h('div'), badge: null });

  // --- lots -------------------------------------------------------------------------------------
  const lotCards = lots.map((lot, li) => {
    const det = h('details', { class: 'lot card', open: li < OPEN_LOTS });
    const steps = lot.steps.map((step, si) => {
      const badge = h('span', { class: 'verdict' });
      return h('li', { class: `step step-${step.step}`, testid: 'trace-step', 'data-step': step.step },
        h('div', { class: 'step-head' },
          h('span', { class: 'step-name' }, t(`step.${step.step}`)),
          step.role ? h('span', { class: 'muted small' }, t(`role_step.${step.role}`)) : null,
          badge,
          step.step === 'current_state' ? h('span', { class: 'step-links' }, t('trace.now_at'), ' ', link(route('block', step.height), `#${step.height}`))
            : stepLinks(step.height, step.tx_hash, step.proof && step.proof.block_time)),
        stepBody(step, app),
        slot(`step:${li}:${si}`, badge, det));
    });
    det.append(
      h('summary', {}, h('span', { class: 'lot-id' }, lot.lot_id), ' ',
        lot.finality ? finalityBadge(lot.finality) : null, ' ',
        h('span', { class: 'muted' }, lot.device_id, ' · ', t(`origin.${lot.origin}`), ' · ',
          t('trace.units_traced', { g: f.int(lot.quantity_g_traced), ranges: (lot.units_traced || []).map(([a, b]) => `${a}–${b}`).join(', ') }))),
      h('ol', { class: 'timeline' }, steps));
    return det;
  });

  const root = h('div', { class: 'stack' },
    head(data.query || ident, data.kind),
    summary, panel, ...extra,
    lots.length ? h('h2', { class: 'section-title' }, t('trace.timeline'), ' ', h('span', { class: 'count' }, String(lots.length))) : null,
    ...lotCards,
    blocksBox);
  return { root, apply };
}

function stepLinks(height, txHash, blockTime) {
  return h('span', { class: 'step-links' },
    blockTime ? h('span', { class: 'muted small' }, f.jst(blockTime)) : null,
    height !== undefined ? link(route('block', height), `#${height}`) : null,
    txHash ? link(route('tx', txHash), h('code', {}, f.hash(txHash, 10))) : null);
}

const units = (u) => (u ? `${u[0]} – ${u[1]}` : '—'); // unit ids: no digit grouping

/** The fields of one step, by kind. */
function stepBody(s, app) {
  switch (s.step) {
    case 'signed_reading':
      return fields([
        [t('col.device'), link(route('consumer', s.owner_at_the_time, s.device_id), s.device_id)],
        [t('trace.seq'), String(s.seq)],
        [t('trace.interval'), `${f.jst(s.interval_start_jst, false)} · ${s.interval_s / 60} min`],
        [t('fig.generation'), `${f.int(s.generation_wh)} Wh`],
        [t('fig.grid_import'), `${f.int(s.import_wh)} Wh`],
        [t('fig.export'), `${f.int(s.export_wh)} Wh`],
        [t('fig.self_consumed'), `${f.int(s.self_consumed_wh)} Wh`],
        [t('trace.owner_then'), s.owner_at_the_time],
        [t('trace.reading_hash'), h('code', { class: 'hash' }, s.reading_hash)],
        [t('trace.device_key'), h('code', { class: 'hash' }, s.device_public_key || '—')],
        s.state_proof ? [t('trace.state_proof'), stateProofText(s.state_proof)] : null,
      ], 'fields cols');
    case 'issued':
      return fields([
        [t('col.lot'), h('code', {}, s.lot_id)],
        [t('trace.issued_to'), s.owner],
        [t('trace.units'), units(s.units)],
        [t('col.quantity_g'), f.grams(s.quantity_g)],
        [t('fig.self_consumed'), `${f.int(s.self_consumed_wh)} Wh`],
        [t('trace.factor'), `${s.factor_g_per_kwh} g/kWh (${s.factor})`],
        [t('trace.factor_source'), h('span', { class: 'small' }, s.factor_source || '—')],
        s.reference ? [t('trace.reference'), s.reference] : null,
      ], 'fields cols');
    case 'transferred':
    case 'traded':
      return fields([
        [t('trace.units'), units(s.units)],
        [t('col.quantity_g'), f.grams(s.quantity_g)],
        [t('trace.from_to'), `${s.from} → ${s.to}`],
        s.trade ? [t('trace.trade'), s.trade] : null,
      ], 'fields cols');
    case 'retired':
      return fields([
        [t('trace.units'), units(s.units)],
        [t('col.quantity_g'), f.grams(s.quantity_g)],
        [t('trace.retired_by'), s.from],
        [t('col.retirement'), link(route('certificate', s.retirement_id), s.retirement_id)],
        [t('cert.beneficiary'), s.beneficiary],
        [t('cert.purpose'), t(`purpose.${s.purpose}`)],
        s.period ? [t('cert.period'), `${s.period.first_day_jst} – ${s.period.last_day_jst}`] : null,
      ], 'fields cols');
    case 'cancelled':
      return fields([
        [t('trace.units'), units(s.units)],
        [t('col.quantity_g'), f.grams(s.quantity_g)],
        [t('trace.holder'), s.from],
        [t('trace.reason'), s.reason || '—'],
      ], 'fields cols');
    case 'current_state':
      return h('div', {},
        table([t('trace.units'), t('trace.holder'), t('col.status'), t('trace.ref')],
          (s.segments || []).map((x) => [units(x.units), x.holder, t(`seg.${x.status}`), x.ref || '—']), { class: 'data compact' }),
        s.state_proof ? h('p', { class: 'small muted' }, t('trace.state_proof'), ': ', stateProofText(s.state_proof)) : null);
    default:
      return fields(Object.entries(s).filter(([, v]) => v === null || typeof v !== 'object').map(([k, v]) => [k, String(v)]));
  }
}

function stateProofText(sp) {
  return [h('code', {}, sp.key), ' → ', t('trace.state_root_of'), ' ', link(route('block', sp.block_height), `#${sp.block_height}`)];
}

function whereText(where, lots) {
  const [kind, a, b] = where.split(':');
  if (kind === 'step') {
    const lot = lots[Number(a)];
    return `${lot.lot_id} · ${t(`step.${lot.steps[Number(b)].step}`)}`;
  }
  if (kind === 'block') return t('trace.block_n', { h: a });
  return t(`trace.where.${kind}`);
}

function reasonText(reason) {
  return reason ? t(reason[0], reason[1]) : '';
}

/** One check as a row: ✓/✗, what was checked and, when it failed, why. */
export function checkRow(c) {
  return h('li', { class: `check ${c.ok ? 'pass' : 'fail'}`, testid: 'verify-check', 'data-status': c.ok ? 'pass' : 'fail' },
    h('span', { class: 'mark', 'aria-hidden': 'true' }, c.ok ? '✓' : '✗'), ' ',
    h('span', { class: 'what' }, t(c.label[0], c.label[1])),
    c.ok ? null : h('span', { class: 'why' }, ' — ', reasonText(c.reason)));
}
