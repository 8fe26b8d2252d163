// "#/": fleet totals, markets at a glance, a participant picker, recent retirements and the
// live activity of the stream.

import { get, getAll } from '../js/api.js';
import { fill, h, link, num, numTh, route, table } from '../js/dom.js';
import * as f from '../js/format.js';
import { t } from '../js/i18n.js';

export function create({ app }) {
  const kpis = h('div', { class: 'kpis' });
  const markets = h('div', { class: 'market-cards' });
  const filter = h('input', { type: 'search', class: 'filter', placeholder: t('overview.filter'), 'aria-label': t('overview.filter') });
  const picker = h('div', { class: 'picker' });
  const retired = h('div');
  const feed = h('ol', { class: 'feed' });
  const el = h('section', { class: 'page' },
    h('div', { class: 'page-head' },
      h('h1', {}, t('overview.title')),
      h('p', { class: 'lead' }, t('overview.lead'))),
    kpis,
    h('div', { class: 'grid-2' },
      h('section', { class: 'card' }, h('h2', {}, t('overview.participants')), filter, picker),
      h('div', { class: 'stack' },
        h('section', { class: 'card' }, h('h2', {}, t('overview.markets')), markets),
        h('section', { class: 'card' }, h('h2', {}, t('overview.activity')), feed))),
    h('section', { class: 'card' }, h('h2', {}, t('overview.retirements')), retired));

  let participants = null;
  let siteCount = new Map();

  function drawPicker() {
    const q = filter.value.trim().toLowerCase();
    const groups = [['prosumer', 'role.prosumer'], ['buyer', 'role.buyer']];
    const shown = participants.filter((p) => p.role !== 'operator'
      && (!q || p.account_id.toLowerCase().includes(q) || (p.name || '').toLowerCase().includes(q)));
    fill(picker, groups.map(([role, label]) => {
      const list = shown.filter((p) => p.role === role || (role === 'buyer' && p.role !== 'prosumer'));
      if (!list.length) return null;
      return [h('h3', {}, t(label), ' ', h('span', { class: 'count' }, String(list.length))),
        h('ul', { class: 'chips' }, list.map((p) => h('li', {},
          h('a', { class: 'chip', href: route('consumer', p.account_id), title: p.account_id },
            h('span', { class: 'chip-name' }, p.name || p.account_id),
            h('span', { class: 'chip-id' }, p.account_id),
            siteCount.get(p.account_id) ? h('span', { class: 'chip-n' }, t('overview.sites', { n: siteCount.get(p.account_id) })) : null))))];
    }));
    if (!picker.children.length) picker.append(h('p', { class: 'muted' }, t('overview.no_match')));
  }
  filter.addEventListener('input', drawPicker);

  function drawFeed() {
    const items = app.events.filter((e) => e.type !== 'block' || e.data.tx_count).slice(0, 12);
    fill(feed, items.length ? items.map(({ type, data }) => h('li', { class: `feed-${type}` },
      h('span', { class: 'feed-kind' }, t(`event.${type}`)), ' ', describe(type, data)))
      : h('li', { class: 'muted' }, t('overview.waiting')));
  }

  return {
    el,
    title: 'overview.title',
    live: ['block', 'issued', 'trade', 'retired'],
    async load(signal) {
      const [devices, mk, rets, parts] = await Promise.all([
        getAll('/v1/devices', { signal }),
        get('/v1/markets?limit=100', { signal }),
        get('/v1/retirements?limit=8', { signal }),
        participants ? null : getAll('/v1/participants', { signal }),
      ]);
      const info = app.info;
      const active = devices.items.filter((d) => d.status === 'active').length;
      const sum = (k) => devices.items.reduce((n, d) => n + ((d.today && d.today[k]) || 0), 0);
      const issued = devices.items.reduce((n, d) => n + (d.issued_g || 0), 0);
      const day = devices.items.find((d) => d.today)?.today.date_jst || f.jstDate(info.last_time);
      fill(kpis,
        kpi(t('overview.height'), String(info.height), f.time(info.last_time)),
        kpi(t('overview.sites_active'), `${f.int(active)} / ${f.int(devices.total)}`, t('overview.devices')),
        kpi(t('overview.gen_today'), `${f.kwh(sum('generation_wh'))} kWh`, `${day} JST`),
        kpi(t('overview.self_today'), `${f.kwh(sum('self_consumed_wh'))} kWh`, `${day} JST`),
        kpi(t('overview.issued'), `${f.creditKg(issued)} kg`, t('overview.issued_sub')),
        kpi(t('overview.retirements_n'), f.int(rets.total), t('overview.retirements_sub')));

      fill(markets, mk.items.map((m) => h('a', { class: 'market-card', href: route('market', m.market_id) },
        h('div', { class: 'mc-id' }, m.market_id),
        h('div', { class: 'mc-name' }, m.name),
        h('div', { class: 'mc-price' }, m.last_price ? `${f.jpy(m.last_price)}/t` : '—'),
        h('div', { class: 'mc-sub' }, t(`mode.${m.mode}`), ' · ', t('market.bid'), ' ', m.best_bid ? f.int(m.best_bid) : '—',
          ' / ', t('market.ask'), ' ', m.best_ask ? f.int(m.best_ask) : '—'))));

      if (parts) {
        participants = parts.items;
        siteCount = new Map(participants.map((p) => [p.account_id, (p.devices || []).length]));
        drawPicker();
      }

      fill(retired, rets.items.length ? table(
        [t('col.retirement'), t('col.beneficiary'), t('col.purpose'), numTh(t('col.quantity_g')), t('col.time')],
        rets.items.map((r) => [
          link(route('certificate', r.retirement_id), r.retirement_id), r.beneficiary, t(`purpose.${r.purpose}`),
          num(f.int(r.quantity_g)), f.jst(r.retired_at_jst)]))
        : h('p', { class: 'muted' }, t('overview.no_retirements')));
      drawFeed();
    },
  };
}

function kpi(label, value, sub) {
  return h('div', { class: 'kpi' }, h('div', { class: 'kpi-label' }, label), h('div', { class: 'kpi-value' }, value),
    sub ? h('div', { class: 'kpi-sub' }, sub) : null);
}

/** One line of the activity feed, with links into the explorer. */
function describe(type, d) {
  switch (type) {
    case 'block':
      return [link(route('block', d.height), `#${f.int(d.height)}`), ' · ', t('event.txs', { n: d.tx_count })];
    case 'issued':
      return [link(route('trace', d.lot_id), d.lot_id), ' · ', f.grams(d.quantity_g), ' → ', d.owner];
    case 'trade':
      return [d.market_id, ' · ', f.grams(d.quantity_g), ' @ ', f.jpy(d.price), '/t · ', d.seller, ' → ', d.buyer];
    case 'retired':
      return [link(route('certificate', d.retirement_id), d.retirement_id), ' · ', f.grams(d.quantity_g), ' · ', d.beneficiary];
    default:
      return '';
  }
}

export { kpi };
