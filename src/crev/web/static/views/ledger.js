// "#/ledger": the chain's identity and its latest blocks, live.

import { get, withQuery } from '../js/api.js';
import { fields, fill, h, link, num, numTh, route, table } from '../js/dom.js';
import * as f from '../js/format.js';
import { t } from '../js/i18n.js';

const PAGE = 50;
let offset = 0; // kept across a language change

export function create({ app, reason }) {
  if (reason === 'route') offset = 0;
  const chain = h('div');
  const blocks = h('div');
  const pager = h('div', { class: 'pager' });
  const el = h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', {}, t('ledger.title')), h('p', { class: 'lead' }, t('ledger.lead'))),
    chain,
    h('section', { class: 'card' }, h('h2', {}, t('ledger.blocks')), blocks, pager));

  const page = (to) => { offset = Math.max(0, to); app.reload(); };

  return {
    el,
    title: 'ledger.title',
    live: ['block'],
    async load(signal) {
      const [info, list] = await Promise.all([
        get('/v1/info', { signal }),
        get(withQuery('/v1/blocks', { offset, limit: PAGE }), { signal }),
      ]);
      fill(chain, h('section', { class: 'card' }, h('h2', {}, t('ledger.chain')), fields([
        [t('ledger.chain_id'), h('code', {}, info.chain_id)],
        [t('ledger.height'), link(route('block', info.height), String(info.height))],
        [t('ledger.last_time'), f.jst(info.last_time_jst)],
        [t('ledger.last_hash'), h('code', { class: 'hash' }, info.last_block_hash)],
        [t('ledger.app_hash'), h('code', { class: 'hash' }, info.app_hash)],
        [t('ledger.genesis'), h('code', { class: 'hash' }, info.genesis_hash)],
        [t('ledger.operator'), info.operator_id],
        [t('ledger.sequencer'), h('code', { class: 'hash' }, info.sequencer_public_key)],
        [t('ledger.depth'), String(info.state_tree_depth)],
      ], 'fields cols')));
      fill(blocks, table(
        [numTh(t('col.height')), t('col.hash'), t('col.time'), numTh(t('col.txs')), t('col.tx_root'), t('col.state_root')],
        list.items.map((b) => h('tr', { testid: 'block-row', 'data-height': String(b.height) },
          num(link(route('block', b.height), `#${b.height}`)),
          h('td', {}, link(route('block', b.height), h('code', {}, f.hash(b.hash, 16)))),
          h('td', { class: 'nowrap' }, f.time(b.time)), num(f.int(b.tx_count)),
          h('td', {}, h('code', { class: 'muted' }, f.hash(b.tx_root, 12))),
          h('td', {}, h('code', { class: 'muted' }, f.hash(b.state_root, 12))))),
        { class: 'data', testid: 'blocks-table' }));
      const last = Math.min(list.total, offset + list.items.length);
      fill(pager,
        h('button', { type: 'button', class: 'btn small', disabled: offset === 0, onclick: () => page(0) }, t('pager.newest')),
        h('button', { type: 'button', class: 'btn small', disabled: offset === 0, onclick: () => page(offset - PAGE) }, t('pager.newer')),
        h('span', { class: 'muted' }, t('pager.range', { a: f.int(offset + 1), b: f.int(last), total: f.int(list.total) })),
        h('button', { type: 'button', class: 'btn small', disabled: last >= list.total, onclick: () => page(offset + PAGE) }, t('pager.older')));
    },
  };
}
