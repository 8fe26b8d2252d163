// "#/market[/{market_id}]": the markets, and for one of them the order book (depth chart and
// ladder), the price of recent trades, the trades themselves and call-auction results.

import { get, seg } from '../js/api.js';
import { COLORS, destroyAll, makeChart } from '../js/charts.js';
import { fill, h, link, num, numTh, route, table, fields } from '../js/dom.js';
import * as f from '../js/format.js';
import { t } from '../js/i18n.js';

const TRADES_SHOWN = 100; // in a scrolling box

export function create({ params }) {
  const charts = [];
  const tabs = h('nav', { class: 'market-tabs', 'aria-label': t('market.markets') });
  const summary = h('div');
  const notice = h('div');
  const depthCanvas = h('canvas', { 'aria-label': t('market.depth') });
  const priceCanvas = h('canvas', { testid: 'price-chart', 'aria-label': t('market.price_chart') });
  const book = h('div');
  const trades = h('div');
  const auctions = h('div');
  const detail = h('div', { class: 'stack', hidden: true },
    summary,
    h('div', { class: 'grid-2' },
      h('section', { class: 'card' }, h('h2', {}, t('market.depth')),
        h('figure', { class: 'chart' }, h('div', { class: 'chart-box' }, depthCanvas))),
      h('section', { class: 'card' }, h('h2', {}, t('market.book')), book)),
    h('section', { class: 'card' }, h('h2', {}, t('market.price_chart')),
      h('figure', { class: 'chart' }, h('div', { class: 'chart-box' }, priceCanvas))),
    h('section', { class: 'card' }, h('h2', {}, t('market.trades')), trades),
    auctions);
  const el = h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', {}, t('market.title')), h('p', { class: 'lead' }, t('market.lead'))),
    tabs, notice, detail);

  function makeCharts() {
    const kgAxis = { beginAtZero: true, title: { display: true, text: 'kg-CO2e' } };
    charts.push(makeChart(depthCanvas, {
      type: 'line',
      data: { datasets: [
        { label: t('market.bids'), data: [], stepped: 'before', fill: 'origin', borderColor: COLORS.bid, backgroundColor: `${COLORS.bid}33`, pointRadius: 0, borderWidth: 2 },
        { label: t('market.asks'), data: [], stepped: 'before', fill: 'origin', borderColor: COLORS.ask, backgroundColor: `${COLORS.ask}33`, pointRadius: 0, borderWidth: 2 },
      ] },
      options: {
        parsing: false,
        scales: { x: { type: 'linear', title: { display: true, text: t('market.price_unit') } }, y: kgAxis },
        plugins: { tooltip: { callbacks: {
          title: (items) => `${f.jpy(items[0].raw.x)}/t`,
          label: (c) => `${c.dataset.label}: ${f.exactKg(Math.round(c.raw.y * 1000))} kg`,
        } } },
      },
    }));
    charts.push(makeChart(priceCanvas, {
      data: { datasets: [
        { type: 'line', label: t('market.price'), data: [], borderColor: COLORS.price, backgroundColor: COLORS.price, yAxisID: 'y', pointRadius: 2, borderWidth: 2, stepped: 'before' },
        { type: 'bar', label: t('market.volume'), data: [], backgroundColor: COLORS.volume, yAxisID: 'vol', barThickness: 4 },
      ] },
      options: {
        parsing: false,
        scales: {
          x: { type: 'linear', ticks: { maxTicksLimit: 8, callback: (v) => f.time(v, false).slice(5, 16) } },
          y: { title: { display: true, text: t('market.price_unit') } },
          vol: { position: 'right', beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: 'kg' } },
        },
        plugins: { tooltip: { callbacks: {
          title: (items) => f.time(items[0].raw.x),
          label: (c) => (c.dataset.yAxisID === 'vol' ? `${c.dataset.label}: ${f.exactKg(Math.round(c.raw.y * 1000))} kg` : `${c.dataset.label}: ${f.jpy(c.raw.y)}/t`),
        } } },
      },
    }));
  }

  function drawDepth(b) {
    const chart = charts[0];
    if (!chart) return;
    // At price x the bids offer to buy Σ(bids ≥ x) and the offers to sell Σ(offers ≤ x), in kg.
    // Both series are steps that hold a point's value until the next point (Chart.js calls that
    // stepped: 'before': horizontal at the previous y, then vertical at the next x).
    const prices = [...b.bids, ...b.asks].map((l) => l.price);
    const lo = Math.min(...prices);
    const hi = Math.max(...prices);
    const pad = Math.max(50, Math.round((hi - lo) * 0.1));
    const up = [...b.bids].reverse(); // ascending price, best bid last
    const cumBid = [];
    let cum = 0;
    for (let i = up.length - 1; i >= 0; i--) cumBid[i] = (cum += up[i].quantity_g) / 1000;
    const bids = up.length ? [{ x: lo - pad, y: cumBid[0] },
      ...up.slice(0, -1).map((l, i) => ({ x: l.price, y: cumBid[i + 1] })), { x: up[up.length - 1].price, y: 0 }] : [];
    cum = 0;
    const asks = b.asks.length ? [{ x: b.asks[0].price, y: 0 },
      ...b.asks.map((l) => ({ x: l.price, y: (cum += l.quantity_g) / 1000 })), { x: hi + pad, y: cum / 1000 }] : [];
    chart.data.datasets[0].data = bids;
    chart.data.datasets[1].data = asks;
    chart.update('none');
  }

  function drawPrices(items) {
    const chart = charts[1];
    if (!chart) return;
    const chron = [...items].reverse();
    chart.data.datasets[0].data = chron.map((x) => ({ x: x.time, y: x.price }));
    // One volume bar per block time (trades of one block share it).
    const vol = new Map();
    for (const x of chron) vol.set(x.time, (vol.get(x.time) || 0) + x.quantity_g);
    chart.data.datasets[1].data = [...vol].map(([x, g]) => ({ x, y: g / 1000 }));
    chart.update('none');
  }

  function drawBook(b) {
    const n = Math.max(b.bids.length, b.asks.length);
    const rows = [];
    for (let i = 0; i < n; i++) {
      const bid = b.bids[i];
      const ask = b.asks[i];
      rows.push([
        num(bid ? f.int(bid.orders) : ''), num(bid ? f.int(bid.quantity_g) : ''),
        h('td', { class: 'num bid' }, bid ? f.int(bid.price) : ''),
        h('td', { class: 'num ask' }, ask ? f.int(ask.price) : ''),
        num(ask ? f.int(ask.quantity_g) : ''), num(ask ? f.int(ask.orders) : '')]);
    }
    fill(book,
      table([numTh(t('col.orders')), numTh(t('col.quantity_g')), numTh(t('market.bid_price')),
        numTh(t('market.ask_price')), numTh(t('col.quantity_g')), numTh(t('col.orders'))],
      rows, { class: 'data ladder', testid: 'book-table' }),
      n ? null : h('p', { class: 'muted' }, t('market.book_empty')),
      h('p', { class: 'muted small' }, t('market.spread'), ': ',
        b.spread === null || b.spread === undefined ? '—' : `${f.jpy(b.spread)}/t`, ' · ', t('market.book_note')));
  }

  function drawTrades(list) {
    const items = list.items.slice(0, TRADES_SHOWN);
    fill(trades,
      h('div', { class: 'scroll-box' }, table([t('col.time'), numTh(t('market.price_unit')), numTh(t('col.quantity_g')), numTh(t('col.value')),
        t('col.buyer'), t('col.seller'), t('market.aggressor'), t('col.retirement'), t('col.tx')],
      items.map((x) => h('tr', { testid: 'trade-row' },
        h('td', { class: 'nowrap' }, f.time(x.time)), num(f.int(x.price)), num(f.int(x.quantity_g)), num(f.jpy(x.value_jpy)),
        h('td', {}, x.buyer), h('td', {}, x.seller), h('td', {}, t(`side.${x.aggressor}`)),
        h('td', {}, x.retirement_id ? link(route('certificate', x.retirement_id), x.retirement_id) : '—'),
        h('td', {}, link(route('tx', x.tx_hash), h('code', {}, f.hash(x.tx_hash, 8)))))),
      { class: 'data', testid: 'trades-table' })),
      items.length ? h('p', { class: 'muted small' }, t('market.trades_shown', { n: items.length, total: f.int(list.total) }))
        : h('p', { class: 'muted' }, t('market.no_trades')));
  }

  function drawAuctions(m, list) {
    if (m.mode !== 'call' && !list.total) {
      fill(auctions);
      return;
    }
    fill(auctions, h('section', { class: 'card' }, h('h2', {}, t('market.auctions')),
      m.next_clear ? h('p', { class: 'muted' }, t('market.next_clear'), ': ', f.time(m.next_clear)) : null,
      table([t('col.time'), numTh(t('market.clearing_price')), numTh(t('market.volume_g')), numTh(t('market.bids')),
        numTh(t('market.asks')), t('col.block'), t('col.tx')],
      list.items.map((a) => [f.time(a.time), num(a.volume_g ? f.int(a.price) : '—'), num(f.int(a.volume_g)),
        num(f.int(a.bids)), num(f.int(a.asks)), link(route('block', a.height), `#${a.height}`),
        link(route('tx', a.tx_hash), h('code', {}, f.hash(a.tx_hash, 8)))]),
      { class: 'data' }),
      list.items.length ? null : h('p', { class: 'muted' }, t('market.no_auctions'))));
  }

  function drawSummary(m) {
    fill(summary, h('section', { class: 'card' },
      h('h2', {}, m.name, ' ', h('span', { class: 'badge' }, t(`mode.${m.mode}`)),
        m.open ? null : h('span', { class: 'badge bad' }, t('market.closed'))),
      fields([
        [t('market.id'), h('code', {}, m.market_id)],
        [t('market.last_price'), m.last_price ? `${f.jpy(m.last_price)}/t` : '—'],
        [t('market.best_bid'), m.best_bid ? `${f.jpy(m.best_bid)}/t` : '—'],
        [t('market.best_ask'), m.best_ask ? `${f.jpy(m.best_ask)}/t` : '—'],
        [t('market.bounds'), `${f.jpy(m.price_min)} – ${f.jpy(m.price_max)}/t`],
        [t('market.min_qty'), f.grams(m.min_qty_g)],
        [t('market.fee'), f.bp(m.fee_bp)],
        m.mode === 'call' && m.next_clear ? [t('market.next_clear'), f.time(m.next_clear)] : null,
      ], 'fields cols')));
  }

  return {
    el,
    title: 'market.title',
    live: ['block'],
    async load(signal) {
      const markets = (await get('/v1/markets?limit=100', { signal })).items;
      // Default: the first continuous market (it has a book and a price), else the first one.
      const first = markets.find((x) => x.mode === 'continuous') || markets[0];
      const id = params.market || (first && first.market_id);
      fill(tabs, markets.map((m) => h('a', { href: route('market', m.market_id), class: m.market_id === id ? 'active' : '' },
        h('span', { class: 'mt-id' }, m.market_id),
        h('span', { class: 'mt-sub' }, t(`mode.${m.mode}`), ' · ', m.last_price ? `${f.jpy(m.last_price)}/t` : '—'))));
      const m = markets.find((x) => x.market_id === id);
      if (!m) {
        fill(notice, h('div', { class: 'notice', testid: 'not-found' },
          id ? t('market.not_found', { id }) : t('market.none')));
        return;
      }
      const base = `/v1/markets/${seg(m.market_id)}`;
      const [b, tr, au] = await Promise.all([
        get(`${base}/book?depth=30`, { signal }),
        get(`${base}/trades?limit=500`, { signal }),
        get(`${base}/auctions?limit=20`, { signal }),
      ]);
      if (!charts.length) makeCharts();
      drawSummary(m);
      drawBook(b);
      drawDepth(b);
      drawPrices(tr.items);
      drawTrades(tr);
      drawAuctions(m, au);
      detail.hidden = false;
    },
    destroy() {
      destroyAll(charts);
    },
  };
}
