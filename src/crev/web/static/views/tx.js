// "#/tx/{hash}": one transaction: where it is, what it did (events, result detail), its bytes and
// its inclusion proof. The explorer (#/trace/{hash}) checks that proof in the browser.

import { get } from '../js/api.js';
import { fields, fill, h, link, route } from '../js/dom.js';
import * as f from '../js/format.js';
import { t } from '../js/i18n.js';

export function create({ params }) {
  const hash = params.hash.toLowerCase();
  const body = h('div', { class: 'stack' });
  const el = h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', {}, t('tx.title')), h('p', { class: 'lead' }, h('code', { class: 'hash' }, hash))),
    body);
  return {
    el,
    title: 'tx.title',
    async load(signal) {
      let x;
      try {
        x = await get(`/v1/tx/${hash}`, { signal });
      } catch (e) {
        if (e.status === 404) {
          fill(body, h('div', { class: 'notice', testid: 'not-found' }, t('tx.not_found', { hash: f.hash(hash, 16) })));
          return;
        }
        throw e;
      }
      const p = x.proof || {};
      // a deposit or withdrawal answered to the public: amounts, reference, bytes and proof withheld
      const withheld = () => (x.redacted ? h('span', { class: 'muted', testid: 'withheld' }, t('tx.withheld', { account: x.private_to || '' })) : null);
      const time = p.block_time || (x.block && x.block.time ? f.time(x.block.time) : '');
      fill(body,
        h('section', { class: 'card' },
          h('div', { class: 'card-head' }, h('h2', {}, t(`kind.${x.kind}`)),
            h('a', { class: 'btn', href: route('trace', x.tx_hash) }, t('tx.verify_in_explorer'))),
          fields([
            [t('col.tx_hash'), h('code', { class: 'hash' }, x.tx_hash)],
            [t('col.block'), link(route('block', x.height), `#${x.height}`)],
            [t('tx.index'), String(x.index)],
            [t('col.time'), p.block_time ? f.jst(p.block_time) : time || '—'],
            [t('col.signer'), x.signer || t('tx.unsigned')],
            [t('col.result'), x.ok ? h('span', { class: 'ok' }, '✓ ', t('tx.ok'))
              : h('span', { class: 'bad' }, '✗ ', t('tx.failed'), ': ', String(x.error))],
            [t('tx.size'), withheld() || t('tx.bytes', { n: f.int((x.raw || '').length / 2) })],
          ])),
        h('section', { class: 'card' }, h('h2', {}, t('tx.events'), ' ', h('span', { class: 'count' }, String((x.events || []).length))),
          (x.events || []).length ? h('ol', { class: 'events' }, x.events.slice(0, 500).map((e) => event(e, x.redacted ? t('tx.withheld_short') : '')))
            : h('p', { class: 'muted' }, t('tx.no_events')),
          x.events && x.events.length > 500 ? h('p', { class: 'muted' }, t('tx.more_events', { n: x.events.length - 500 })) : null),
        h('section', { class: 'card' }, h('h2', {}, t('tx.detail')),
          x.redacted ? h('p', {}, withheld()) : h('pre', { class: 'json' }, detailText(x.detail))),
        x.redacted ? h('section', { class: 'card' }, h('h2', {}, t('tx.proof')), h('p', {}, withheld())) : h('section', { class: 'card' }, h('h2', {}, t('tx.proof')), fields([
          [t('tx.leaf'), h('code', { class: 'hash' }, p.leaf || '—')],
          [t('tx.position'), t('tx.position_of', { i: p.index, n: p.size })],
          [t('tx.path'), h('ol', { class: 'plain hashes' }, (p.path || []).map((s) => h('li', {}, h('code', { class: 'hash' }, s))))],
          [t('col.tx_root'), h('code', { class: 'hash' }, p.tx_root || '—')],
        ])),
        x.redacted ? null : h('details', { class: 'raw' }, h('summary', {}, t('tx.raw')), h('code', { class: 'hex' }, x.raw || '')));
    },
  };
}

/** One event: its type and its fields; ids that have pages become links; a field the public
 *  answer withholds (null in a redacted transaction) reads ``withheld``. */
function event(e, withheld = '') {
  const links = {
    lot_id: (v) => route('trace', v), retirement_id: (v) => route('certificate', v), market_id: (v) => route('market', v),
  };
  return h('li', {}, h('span', { class: 'badge' }, t(`event_type.${e.type}`)), ' ',
    Object.entries(e).filter(([k]) => k !== 'type').map(([k, v]) => h('span', { class: 'kv' },
      h('span', { class: 'k' }, k), '=',
      links[k] && v ? link(links[k](v), String(v))
        : v === null && withheld ? h('span', { class: 'v muted' }, withheld)
          : h('span', { class: 'v' }, typeof v === 'object' ? JSON.stringify(v) : String(v)))));
}

/** A result detail as text: a list shows one item per line (a batch of readings has thousands). */
function detailText(detail) {
  const text = Array.isArray(detail) ? detail.map((d) => JSON.stringify(d)).join('\n') : JSON.stringify(detail, null, 1);
  return text.length > 20000 ? `${text.slice(0, 20000)}\n…` : text;
}
