// "#/ledger": the chain's identity and its latest blocks, live. In consortium mode also the
// members (each node's height and app hash, its voting power) and who signed each block.

import { get, withQuery } from '../js/api.js';
import { fields, fill, h, link, num, numTh, route, table } from '../js/dom.js';
import * as f from '../js/format.js';
import { t } from '../js/i18n.js';

const PAGE = 50;
let offset = 0; // kept across a language change

export function create({ app, reason }) {
  if (reason === 'route') offset = 0;
  const chain = h('div');
  const members = h('div');
  const blocks = h('div');
  const pager = h('div', { class: 'pager' });
  const el = h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', {}, t('ledger.title')),
      h('p', { class: 'lead' }, t(app.info && app.info.consortium ? 'ledger.lead_consortium' : 'ledger.lead'))),
    chain,
    members,
    h('section', { class: 'card' }, h('h2', {}, t('ledger.blocks')), blocks, pager));

  const page = (to) => { offset = Math.max(0, to); app.reload(); };

  // the members' heights move without crev blocks (CometBFT's empty blocks): refreshed on a timer
  const timer = setInterval(() => { if (app.info && app.info.consortium) app.reload(); }, 3000);

  return {
    el,
    title: 'ledger.title',
    live: ['block'],
    destroy() { clearInterval(timer); },
    async load(signal) {
      const [info, list] = await Promise.all([
        get('/v1/info', { signal }),
        get(withQuery('/v1/blocks', { offset, limit: PAGE }), { signal }),
      ]);
      const consortium = info.consortium ? await get('/v1/consortium', { signal }) : null;
      fill(members, consortium ? consortiumCard(consortium) : null);
      fill(chain, h('section', { class: 'card' }, h('h2', {}, t('ledger.chain')), fields([
        [t('ledger.chain_id'), h('code', {}, info.chain_id)],
        [t('ledger.height'), link(route('block', info.height), String(info.height))],
        [t('ledger.last_time'), f.jst(info.last_time_jst)],
        [t('ledger.last_hash'), h('code', { class: 'hash' }, info.last_block_hash)],
        [t('ledger.app_hash'), h('code', { class: 'hash' }, info.app_hash)],
        [t('ledger.genesis'), h('code', { class: 'hash' }, info.genesis_hash)],
        [t('ledger.operator'), info.operator_id],
        consortium ? null : [t('ledger.sequencer'), h('code', { class: 'hash' }, info.sequencer_public_key)],
        [t('ledger.depth'), String(info.state_tree_depth)],
      ], 'fields cols')));
      fill(blocks, table(
        [numTh(t('col.height')), t('col.hash'), t('col.time'), numTh(t('col.txs')), t('col.tx_root'), t('col.state_root'),
          consortium ? t('col.signed_by') : null].filter(Boolean),
        list.items.map((b) => h('tr', { testid: 'block-row', 'data-height': String(b.height) },
          num(link(route('block', b.height), `#${b.height}`)),
          h('td', {}, link(route('block', b.height), h('code', {}, f.hash(b.hash, 16)))),
          h('td', { class: 'nowrap' }, f.time(b.time)), num(f.int(b.tx_count)),
          h('td', {}, h('code', { class: 'muted' }, f.hash(b.tx_root, 12))),
          h('td', {}, h('code', { class: 'muted' }, f.hash(b.state_root, 12))),
          consortium ? h('td', { testid: 'block-signers' }, signedBy(b)) : null)),
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

/** "registry, utility, retailer · 30/40" (null signers: CometBFT did not answer). */
function signedBy(b) {
  if (!b.signers) return '—';
  return h('span', { title: t('block.signed_power', { s: b.signed_power, t: b.total_power }) },
    b.signers.join(', '), ' ', h('span', { class: 'muted' }, `· ${b.signed_power}/${b.total_power}`));
}

function consortiumCard(c) {
  const status = (m) => {
    if (!m.up) return h('span', { class: 'bad' }, '✗ ', t('consortium.down'));
    if (m.catching_up) return h('span', { class: 'muted' }, t('consortium.catching_up'));
    return h('span', { class: 'ok' }, '✓ ', t('consortium.up'));
  };
  const quorum = Math.floor((2 * c.total_power) / 3);
  return h('section', { class: 'card', testid: 'consortium' },
    h('h2', {}, t('consortium.title')),
    h('p', { class: 'muted' }, t('consortium.lead', { member: c.api_member }), ' ',
      t('consortium.total', { p: f.int(c.total_power), q: f.int(quorum) })),
    table(
      [t('consortium.member'), t('consortium.status'), numTh(t('consortium.power')), numTh(t('consortium.height')),
        t('consortium.app_hash'), t('consortium.address'), t('consortium.node_id'), t('consortium.rpc')],
      c.members.map((m) => h('tr', { testid: 'member-row', 'data-name': m.name, 'data-height': String(m.height || '') },
        h('td', {}, h('strong', {}, m.name), m.validator ? null : h('span', { class: 'muted' }, ` (${t('consortium.full_node')})`)),
        h('td', {}, status(m)),
        num(m.up ? f.int(m.power) : '—'),
        num(m.up ? f.int(m.height) : '—'),
        h('td', {}, h('code', { class: 'muted' }, m.up ? f.hash(m.app_hash, 12) : '—')),
        h('td', {}, h('code', { class: 'muted' }, m.up ? f.hash(m.address, 12) : '—')),
        h('td', {}, h('code', { class: 'muted' }, m.up ? f.hash(m.node_id, 12) : '—')),
        h('td', {}, h('code', {}, m.rpc)))),
      { class: 'data', testid: 'members-table' }));
}
