// "#/block/{height}": one block's header fields, its transactions, and the header checked in the
// browser (hash, fields, sequencer signature) the same way the explorer checks it.

import { get } from '../js/api.js';
import { fields, fill, h, link, num, numTh, route, table } from '../js/dom.js';
import * as f from '../js/format.js';
import { t } from '../js/i18n.js';
import { verifyTrace } from '../js/verify.js';
import { checkRow } from './trace.js';

export function create({ params, app }) {
  const height = Number(params.height);
  const head = h('div', { class: 'page-head' }, h('h1', {}, t('block.title', { h: height })));
  const body = h('div', { class: 'stack' });
  const el = h('section', { class: 'page' }, head, body);
  return {
    el,
    title: 'block.title_short',
    async load(signal) {
      let b;
      try {
        // Past the tip there is nothing to ask for (and a 404 would only clutter the console).
        if (!(height >= 1 && height <= app.info.height)) throw Object.assign(new Error('no block'), { status: 404 });
        b = await get(`/v1/blocks/${height}`, { signal });
      } catch (e) {
        if (e.status === 404) {
          fill(body, h('div', { class: 'notice', testid: 'not-found' }, t('block.not_found', { h: height }), ' ',
            link(route('ledger'), t('nav.ledger'))));
          return;
        }
        throw e;
      }
      const checks = h('ul', { class: 'checks' });
      fill(head, h('div', { class: 'head-row' },
        h('h1', {}, t('block.title', { h: b.height })),
        h('div', { class: 'btn-row' },
          b.height > 1 ? h('a', { class: 'btn small', href: route('block', b.height - 1) }, '‹ ', t('block.prev')) : null,
          b.height < app.info.height ? h('a', { class: 'btn small', href: route('block', b.height + 1) }, t('block.next'), ' ›') : null)));
      fill(body,
        h('section', { class: 'card' }, h('h2', {}, t('block.header')), fields([
          [t('col.hash'), h('code', { class: 'hash' }, b.hash)],
          [t('ledger.chain_id'), h('code', {}, b.chain_id)],
          [t('col.time'), f.time(b.time)],
          [t('block.prev_hash'), b.height > 1 ? link(route('block', b.height - 1), h('code', { class: 'hash' }, b.prev_hash))
            : h('code', { class: 'hash' }, b.prev_hash)],
          [t('col.tx_root'), h('code', { class: 'hash' }, b.tx_root)],
          [t('block.results_root'), h('code', { class: 'hash' }, b.results_root)],
          [t('col.state_root'), h('code', { class: 'hash' }, b.state_root)],
          [t('col.txs'), f.int(b.tx_count)],
          b.signers === undefined ? [t('block.signature'), h('code', { class: 'hash' }, b.signature)] : null,
          b.signers ? [t('block.signers', { h: b.cometbft_height }), h('span', { testid: 'block-signers' },
            b.signers.map((x) => x.name).join(', '), ' ',
            h('span', { class: 'muted' }, `(${t('block.signed_power', { s: b.signed_power, t: b.total_power })})`))] : null,
          b.absent && b.absent.length ? [t('block.absent'), b.absent.map((x) => x.name).join(', ')] : null,
        ]),
        h('details', { class: 'raw' }, h('summary', {}, t('block.header_bytes')), h('code', { class: 'hex' }, b.header)),
        h('h3', {}, t('block.checked')), checks),
        h('section', { class: 'card' }, h('h2', {}, t('block.txs')), table(
          [numTh('#'), t('col.tx_hash'), t('col.kind'), t('col.signer'), t('col.result')],
          b.txs.map((x) => [num(String(x.index)), link(route('tx', x.tx_hash), h('code', {}, x.tx_hash)),
            t(`kind.${x.kind}`), x.signer || '—', x.ok ? h('span', { class: 'ok' }, '✓ ', t('tx.ok')) : h('span', { class: 'bad' }, '✗ ', t('tx.failed'))]),
          { class: 'data' })));
      // a consortium block: checked through the CometBFT commit the answer carries, not a sequencer key
      const res = await verifyTrace({ blocks: { [b.height]: b }, consortium: b.consortium }, app.info);
      fill(checks, res.checks.map(checkRow));
    },
  };
}
