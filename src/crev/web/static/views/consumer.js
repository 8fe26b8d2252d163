// "#/consumer/{participant}[/{site}]": a consumer's renewable share, emissions (location- and
// market-based) and average emission factor, now / per 30-minute slot / per day / fiscal year to
// date / in total, and the 24/7 matching score. All numbers come from GET /v1/figures (the same
// as `crev report`); nothing is recomputed here except unit conversion for display.

import { get, getAll, seg, withQuery } from '../js/api.js';
import { COLORS, destroyAll, makeChart, setChartData } from '../js/charts.js';
import { fill, h, link, num, numTh, route, table } from '../js/dom.js';
import * as f from '../js/format.js';
import { t } from '../js/i18n.js';
import { create as createSite, limitSeries } from './site.js';

const WINDOW_DAYS = 31; // the per-day chart and the day picker cover the last 31 JST days
const picked = new Map(); // "participant/site" → the day the user picked (kept across refreshes and a language change)
let participants = null; // for the switcher, fetched once

export function create({ params, app, reason, signal }) {
  const { participant, site = null } = params;
  const key = `${participant}/${site || ''}`;
  if (reason === 'route') picked.delete(key);
  const charts = [];

  const head = h('div', { class: 'page-head' });
  const notice = h('div');
  const kpis = h('div', { class: 'kpis kpis-6' });
  const periods = h('div');
  const dayLabel = h('span', { class: 'day-label' });
  const dayInput = h('input', { type: 'date', class: 'day-input', 'aria-label': t('consumer.pick_day') });
  const prev = h('button', { type: 'button', class: 'btn small', title: t('consumer.prev_day') }, '‹');
  const next = h('button', { type: 'button', class: 'btn small', title: t('consumer.next_day') }, '›');
  const slotEnergy = h('canvas', { 'aria-label': t('consumer.chart_slot_energy') });
  const slotEmis = h('canvas', { 'aria-label': t('consumer.chart_slot_emissions') });
  const daily = h('canvas', { 'aria-label': t('consumer.chart_daily') });
  const sites = h('div');
  const factors = h('div');
  // a site's smart-meter reconciliation, drift, debt and control records (views/site.js)
  const sitePanel = site ? createSite({ site }) : null;
  const body = h('div', { class: 'stack', hidden: true },
    kpis,
    h('section', { class: 'card' }, h('h2', {}, t('consumer.periods')), periods),
    h('section', { class: 'card' },
      h('div', { class: 'card-head' }, h('h2', {}, t('consumer.per_slot'), ' ', dayLabel),
        h('div', { class: 'day-nav' }, prev, dayInput, next)),
      h('div', { class: 'grid-2' },
        h('figure', { class: 'chart' }, h('figcaption', {}, t('consumer.chart_slot_energy')), h('div', { class: 'chart-box' }, slotEnergy)),
        h('figure', { class: 'chart' }, h('figcaption', {}, t('consumer.chart_slot_emissions')), h('div', { class: 'chart-box' }, slotEmis)))),
    sitePanel ? sitePanel.el : null,
    h('section', { class: 'card' }, h('h2', {}, t('consumer.per_day')),
      h('figure', { class: 'chart' }, h('div', { class: 'chart-box tall' }, daily))),
    sites,
    factors);
  const el = h('section', { class: 'page' }, head, notice, body);

  let last = null; // the latest answer, for day navigation without refetching
  let span = null; // {from, to}: the JST days the answer's by_day and slots cover

  function makeCharts() {
    const kwhAxis = { beginAtZero: true, title: { display: true, text: 'kWh' } };
    const kgAxis = { beginAtZero: true, title: { display: true, text: 'kg-CO2e' } };
    charts.push(makeChart(slotEnergy, {
      type: 'bar',
      data: { labels: [], datasets: [
        { label: t('fig.self_consumed'), data: [], backgroundColor: COLORS.self, stack: 'e' },
        { label: t('fig.grid_import'), data: [], backgroundColor: COLORS.grid, stack: 'e' },
        { label: t('fig.claimed'), data: [], type: 'line', order: -1, borderColor: COLORS.solar, backgroundColor: COLORS.solar,
          pointRadius: 0, borderWidth: 2, tension: 0.25 },
        // a site's control records: the PCS limit and the export cap in force, as steps (kW, right axis)
        ...(site ? [
          { label: t('site.limit'), data: [], type: 'line', yAxisID: 'kw', stepped: true, order: -2, borderColor: COLORS.ink,
            backgroundColor: COLORS.ink, pointRadius: 0, borderWidth: 1.5 },
          { label: t('site.export_cap'), data: [], type: 'line', yAxisID: 'kw', stepped: true, order: -2, borderColor: COLORS.location,
            backgroundColor: COLORS.location, pointRadius: 0, borderWidth: 1.5, borderDash: [6, 4] },
        ] : []),
      ] },
      options: { scales: { x: { stacked: true, ticks: { maxTicksLimit: 12 } }, y: { ...kwhAxis, stacked: true },
        ...(site ? { kw: { position: 'right', beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: 'kW' } } } : {}) },
        plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${fmt1(c.raw)} ${c.dataset.yAxisID === 'kw' ? 'kW' : 'kWh'}` } } } },
    }));
    charts.push(makeChart(slotEmis, {
      type: 'line',
      data: { labels: [], datasets: [
        { label: t('fig.location_based'), data: [], borderColor: COLORS.location, backgroundColor: COLORS.location, pointRadius: 0, borderWidth: 2, tension: 0.25 },
        { label: t('fig.market_based'), data: [], borderColor: COLORS.market, backgroundColor: COLORS.market, pointRadius: 0, borderWidth: 2, tension: 0.25 },
      ] },
      options: { scales: { x: { ticks: { maxTicksLimit: 12 } }, y: kgAxis },
        plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${fmt1(c.raw)} kg` } } } },
    }));
    charts.push(makeChart(daily, {
      type: 'bar',
      data: { labels: [], datasets: [
        { label: t('fig.location_based'), data: [], backgroundColor: COLORS.location, yAxisID: 'y', order: 2, maxBarThickness: 36 },
        { label: t('fig.market_based'), data: [], backgroundColor: COLORS.market, yAxisID: 'y', order: 2, maxBarThickness: 36 },
        { label: t('fig.renewable_share'), data: [], type: 'line', borderColor: COLORS.share, backgroundColor: COLORS.share, yAxisID: 'pct', borderWidth: 2, pointRadius: 3, order: 1 },
        { label: t('fig.onsite_share'), data: [], type: 'line', borderColor: COLORS.self, backgroundColor: COLORS.self, yAxisID: 'pct', borderWidth: 2, pointRadius: 3, borderDash: [5, 4], order: 1 },
      ] },
      options: {
        scales: { y: kgAxis, pct: { position: 'right', beginAtZero: true, suggestedMax: 10, grid: { drawOnChartArea: false }, title: { display: true, text: '%' } } },
        plugins: { tooltip: { callbacks: { label: (c) => (c.dataset.yAxisID === 'pct' ? `${c.dataset.label}: ${c.raw.toFixed(2)} %` : `${c.dataset.label}: ${fmt1(c.raw)} kg`) } } },
      },
    }));
  }

  async function showDay(day, signal) {
    let slots = last.slots;
    let dayFigures = last.by_day[day] || null;
    if (day < span.from) {
      // Older than the window the main answer covers: ask for that day alone.
      const one = await get(figuresPath(participant, site, day, day), { signal });
      slots = one.slots;
      dayFigures = one.by_day[day] || null;
    }
    const controls = sitePanel ? await sitePanel.load(day, signal) : null;
    drawDay(day, slots, controls);
    drawPeriods(dayFigures, day);
  }

  function drawDay(day, slots, controls) {
    const start = Date.parse(`${day}T00:00:00+09:00`) / 1000;
    const bySlot = new Map(slots.map((s) => [s.slot_start, s]));
    const labels = [];
    const series = [[], [], [], [], []];
    for (let i = 0; i < 48; i++) {
      const s = bySlot.get(start + i * 1800);
      labels.push(f.hhmm(start + i * 1800));
      series[0].push(s ? s.self_consumed_wh / 1000 : null);
      series[1].push(s ? s.import_wh / 1000 : null);
      series[2].push(s ? s.claimed_wh / 1000 : null);
      series[3].push(s ? s.location_based_g / 1000 : null);
      series[4].push(s ? s.market_based_g / 1000 : null);
    }
    const steps = controls ? limitSeries(day, controls) : null;
    setChartData(charts[0], labels, steps ? [...series.slice(0, 3), steps.limit, steps.cap] : series.slice(0, 3));
    setChartData(charts[1], labels, series.slice(3));
    dayLabel.textContent = `${day} (JST)`;
    dayInput.value = day;
    dayInput.max = span.to;
    prev.disabled = day <= '1970-01-01';
    next.disabled = day >= span.to;
  }

  function drawPeriods(dayFigures, day) {
    const fy = f.fiscalYear(span.to);
    const now = last.now;
    const rows = [
      now ? [t('consumer.now'), `${f.time(now.slot_start, false)}–${f.hhmm(now.slot_start + 1800)}`, now] : null,
      dayFigures ? [t('consumer.day'), `${day} JST`, dayFigures] : null,
      [t('consumer.fytd'), t('consumer.fy', { fy }), last.fiscal_year_to_date],
      [t('consumer.total'), t('consumer.total_sub'), last.total],
    ].filter(Boolean);
    fill(periods, table(
      [t('col.period'), numTh(t('fig.demand_kwh')), numTh(t('fig.self_kwh')), numTh(t('fig.claimed_kwh')),
        numTh(t('fig.renewable_share')), numTh(t('fig.onsite_share')), numTh(t('fig.location_kg')),
        numTh(t('fig.market_kg')), numTh(t('fig.factor'))],
      rows.map(([label, sub, x]) => [
        h('div', {}, h('strong', {}, label), h('div', { class: 'muted small' }, sub)),
        num(f.kwh(x.demand_wh)), num(f.kwh(x.self_consumed_wh)), num(f.kwh(x.claimed_wh)),
        num(f.bp(x.renewable_share_bp)), num(f.bp(x.onsite_share_bp)), num(f.kg(x.location_based_g)),
        num(f.kg(x.market_based_g)), num(f.int(x.average_factor_g_per_kwh))]),
      { class: 'data' }));
  }

  function drawHead(fig) {
    const siteIds = fig.sites.map((s) => s.device_id);
    const select = participants ? h('select', { class: 'switch', 'aria-label': t('consumer.switch'),
      onchange: (e) => app.navigate(route('consumer', e.target.value)) },
    participants.filter((p) => p.role !== 'operator').map((p) => h('option', { value: p.account_id, selected: p.account_id === participant },
      `${p.name} (${p.account_id})`))) : null;
    fill(head,
      h('div', { class: 'head-row' },
        h('div', {},
          h('h1', {}, fig.name || participant, site ? h('span', { class: 'h1-sub' }, ` · ${site}`) : null),
          h('p', { class: 'lead' }, h('code', {}, participant), ' · ', t(`role1.${fig.role}`),
            ' · ', t('consumer.sites_n', { n: siteIds.length }))),
        select),
      siteIds.length ? h('nav', { class: 'tabs', 'aria-label': t('consumer.sites') },
        h('a', { href: route('consumer', participant), class: site ? '' : 'active' }, t('consumer.all_sites')),
        siteIds.map((id) => h('a', { href: route('consumer', participant, id), class: id === site ? 'active' : '' }, id)))
        : null);
  }

  function drawKpis(fig) {
    const x = fig.total;
    fill(kpis,
      metric('renewable-share', t('fig.renewable_share'), f.bp(x.renewable_share_bp), x.renewable_share_bp,
        t('consumer.renewable_sub', { kwh: f.kwh(x.claimed_wh) })),
      metric('onsite-share', t('fig.onsite_share'), f.bp(x.onsite_share_bp), x.onsite_share_bp,
        t('consumer.onsite_sub', { kwh: f.kwh(x.self_consumed_wh) })),
      metric('matching-247', t('fig.matching_247'), f.bp(fig.matching_247_bp), fig.matching_247_bp, t('consumer.matching_sub')),
      metric('emissions-location', t('fig.location_based'), `${f.kg(x.location_based_g)} kg`, x.location_based_g, t('consumer.location_sub')),
      metric('emissions-market', t('fig.market_based'), `${f.kg(x.market_based_g)} kg`, x.market_based_g, t('consumer.market_sub')),
      metric('average-factor', t('fig.factor'), `${f.int(x.average_factor_g_per_kwh)} g/kWh`, x.average_factor_g_per_kwh,
        t('consumer.factor_sub')));
  }

  function drawSites(fig) {
    if (!fig.sites.length) {
      fill(sites);
      return;
    }
    fill(sites, h('section', { class: 'card' }, h('h2', {}, t('consumer.sites')), table(
      [t('col.site'), t('col.grid_area'), numTh(t('col.capacity')), numTh(t('fig.demand_kwh')), numTh(t('fig.self_kwh')),
        numTh(t('fig.renewable_share')), numTh(t('fig.onsite_share')), numTh(t('fig.matching_247')),
        numTh(t('fig.location_kg')), numTh(t('fig.market_kg'))],
      fig.sites.map((s) => h('tr', { class: s.device_id === site ? 'current' : '' },
        h('td', {}, link(route('consumer', participant, s.device_id), s.device_id)), h('td', {}, t(`area.${s.grid_area}`)),
        num(f.kw(s.rated_capacity_w)), num(f.kwh(s.demand_wh)), num(f.kwh(s.self_consumed_wh)),
        num(f.bp(s.renewable_share_bp)), num(f.bp(s.onsite_share_bp)), num(f.bp(s.matching_247_bp)),
        num(f.kg(s.location_based_g)), num(f.kg(s.market_based_g)))),
      { class: 'data' })));
  }

  function drawFactors(fig) {
    const rows = Object.entries(fig.factors || {}).filter(([id]) => !site || id === site);
    fill(factors, rows.length ? h('section', { class: 'card' }, h('h2', {}, t('consumer.factors')),
      h('p', { class: 'muted small' }, t('consumer.factors_note')),
      table([t('col.site'), t('col.grid_area'), t('fig.location_based'), t('fig.market_based')],
        rows.map(([id, x]) => [id, t(`area.${x.grid_area}`), factorList(x.location_based), factorList(x.market_based)]),
        { class: 'data' })) : null);
  }

  // Day navigation: redraws from the last answer (or asks for an older day).
  const go = (day) => {
    if (!last || !/^\d{4}-\d{2}-\d{2}$/.test(day) || day > span.to) return;
    picked.set(key, day);
    app.run(() => showDay(day, signal));
  };
  prev.addEventListener('click', () => go(f.addDays(dayInput.value, -1)));
  next.addEventListener('click', () => go(f.addDays(dayInput.value, 1)));
  dayInput.addEventListener('change', () => go(dayInput.value));

  return {
    el,
    title: 'consumer.title',
    live: ['block'],
    async load() {
      app.rememberConsumer(route('consumer', participant, ...(site ? [site] : [])));
      const to = f.jstDate(app.info.last_time);
      span = { from: f.addDays(to, 1 - WINDOW_DAYS), to };
      let fig;
      try {
        if (!participants) participants = (await getAll('/v1/participants', { signal })).items;
        // Known participants and their sites are in that list: no need to provoke a 404.
        const who = participants.find((p) => p.account_id === participant);
        if (!who || (site && !(who.devices || []).includes(site))) {
          participants = null; // maybe registered since: ask again next time
          throw Object.assign(new Error('unknown'), { status: 404, reason: '' });
        }
        fig = await get(figuresPath(participant, site, span.from, span.to), { signal });
      } catch (e) {
        if (e.status === 404) {
          fill(head, h('h1', {}, participant));
          fill(notice, h('div', { class: 'notice', testid: 'not-found' }, t('consumer.not_found', { id: site ? `${participant}/${site}` : participant }),
            ' ', h('span', { class: 'muted' }, e.reason), ' ', link('#/', t('consumer.pick'))));
          return;
        }
        throw e;
      }
      last = fig;
      if (!charts.length) makeCharts();
      drawHead(fig);
      fill(notice, fig.sites.length ? null : h('div', { class: 'notice' },
        t('consumer.no_sites', { g: f.int(fig.bought_g), claimed: f.int(fig.total.claimed_g) })));
      drawKpis(fig);
      drawSites(fig);
      drawFactors(fig);

      const days = Object.keys(fig.by_day).sort();
      const labels = days.map((d) => d.slice(5));
      const pick = (k, scale) => days.map((d) => fig.by_day[d][k] / scale);
      setChartData(charts[2], labels, [pick('location_based_g', 1000), pick('market_based_g', 1000),
        pick('renewable_share_bp', 100), pick('onsite_share_bp', 100)]);

      // Follow the latest day unless the user picked one.
      const latest = fig.now ? f.jstDate(fig.now.slot_start) : span.to;
      const day = [picked.get(key) || latest, span.to].sort()[0];
      await showDay(day, signal);
      body.hidden = false;
    },
    destroy() {
      destroyAll(charts);
      if (sitePanel) sitePanel.destroy();
    },
  };
}

/** GET /v1/figures path for a participant, optional site and a day range. */
function figuresPath(participant, site, from, to) {
  return withQuery(`/v1/figures/${seg(participant)}`, { site, from, to });
}

function metric(testid, label, text, raw, sub) {
  return h('div', { class: 'kpi' },
    h('div', { class: 'kpi-label' }, label),
    h('div', { class: 'kpi-value', testid, 'data-value': String(raw) }, text),
    sub ? h('div', { class: 'kpi-sub' }, sub) : null);
}

function factorList(map) {
  const entries = Object.entries(map || {});
  if (!entries.length) return '—';
  return h('ul', { class: 'plain' }, entries.map(([k, v]) => h('li', {}, h('code', {}, k), ` ${v} g/kWh`)));
}

const fmt1 = (x) => (x === null || x === undefined ? '—' : x.toLocaleString('en-US', { maximumFractionDigits: 1 }));
