// The site (device) part of "#/consumer/{participant}/{site}": what the utility smart meter said
// about each 30-minute slot and what the DGC did to the inverter. From GET /v1/devices/{id}
// (debt, calibration drift), /v1/devices/{id}/slots (each slot's C-REV: provisional hatched, final
// solid, corrected with the smart meter's figure) and /v1/devices/{id}/controls (the PCS limit and
// export cap as step lines over the readings' chart, and a table of the records).

import { get, seg, withQuery } from '../js/api.js';
import { COLORS, makeChart, setChartData } from '../js/charts.js';
import { fill, h, num, numTh, table } from '../js/dom.js';
import * as f from '../js/format.js';
import { t } from '../js/i18n.js';

export const FINALITY_COLORS = { final: COLORS.claimed, corrected: COLORS.market, late: COLORS.muted, provisional: COLORS.claimed };
const FINALITIES = ['final', 'corrected', 'late', 'provisional'];

/** Diagonal stripes on a transparent ground: provisional C-REV (not yet confirmed by the smart meter). */
function hatch(color) {
  const c = document.createElement('canvas');
  c.width = 8;
  c.height = 8;
  const g = c.getContext('2d');
  if (!g) return color;
  g.fillStyle = 'rgba(15, 118, 110, 0.12)';
  g.fillRect(0, 0, 8, 8);
  g.strokeStyle = color;
  g.lineWidth = 2;
  g.beginPath();
  g.moveTo(-2, 2); g.lineTo(2, -2);
  g.moveTo(0, 8); g.lineTo(8, 0);
  g.moveTo(6, 10); g.lineTo(10, 6);
  g.stroke();
  return g.createPattern(c, 'repeat') || color;
}

/** The control record in force in each of the day's 48 slots (the latest applied before the slot ends). */
export function limitSeries(day, controls) {
  const start = Date.parse(`${day}T00:00:00+09:00`) / 1000;
  const sorted = [...controls].sort((a, b) => a.applied_at - b.applied_at || a.seq - b.seq);
  const limit = [];
  const cap = [];
  for (let i = 0; i < 48; i++) {
    const end = start + (i + 1) * 1800;
    let cur = null;
    for (const c of sorted) if (c.applied_at < end) cur = c;
    limit.push(cur ? cur.limit_w / 1000 : null);
    cap.push(cur && cur.export_cap_w !== null ? cur.export_cap_w / 1000 : null);
  }
  return { limit, cap };
}

export function create({ site }) {
  const alerts = h('div', { class: 'site-alerts' });
  const canvas = h('canvas', { 'aria-label': t('site.chart_crev') });
  const slotsBox = h('div');
  const controlsBox = h('div');
  const el = h('div', { class: 'stack' },
    alerts,
    h('section', { class: 'card', testid: 'site-reconciliation' },
      h('div', { class: 'card-head' }, h('h2', {}, t('site.reconciliation')),
        h('span', { class: 'muted small' }, t('site.reconciliation_note'))),
      h('figure', { class: 'chart' }, h('figcaption', {}, t('site.chart_crev')), h('div', { class: 'chart-box' }, canvas)),
      slotsBox),
    h('section', { class: 'card', testid: 'site-controls' },
      h('div', { class: 'card-head' }, h('h2', {}, t('site.controls')), h('span', { class: 'muted small' }, t('site.controls_note'))),
      controlsBox));
  let chart = null;
  let controls = [];

  function makeCrevChart() {
    const ds = FINALITIES.map((k) => ({
      label: t(`finality.${k}`), data: [], stack: 'c', borderColor: FINALITY_COLORS[k], borderWidth: k === 'provisional' ? 1 : 0,
      backgroundColor: k === 'provisional' ? hatch(FINALITY_COLORS[k]) : FINALITY_COLORS[k],
    }));
    ds.push({ label: t('site.smart_meter_figure'), data: [], type: 'line', showLine: false, order: -1, pointStyle: 'crossRot',
      pointRadius: 7, pointBorderWidth: 2, borderColor: COLORS.location, backgroundColor: COLORS.location });
    chart = makeChart(canvas, {
      type: 'bar', data: { labels: [], datasets: ds },
      options: { scales: { x: { stacked: true, ticks: { maxTicksLimit: 12 } },
        y: { stacked: true, beginAtZero: true, title: { display: true, text: 'g-CO2e (C-REV)' } } },
      plugins: { tooltip: { callbacks: { label: (c) => (c.raw === null ? null : `${c.dataset.label}: ${f.int(c.raw)} g`) } } } },
    });
  }

  function drawAlerts(dev) {
    const d = dev.drift || {};
    fill(alerts,
      d.alert ? h('div', { class: 'notice error', testid: 'drift-alert', role: 'alert' },
        h('span', { class: 'badge bad' }, t('site.drift_badge')), ' ',
        t(`site.drift_text.${d.direction || 'above'}`, { n: d.consecutive, after: d.alert_after_slots })) : null,
      dev.debt_g > 0 ? h('div', { class: 'notice warn', testid: 'debt' },
        h('strong', {}, t('site.debt_title')), t('site.debt_text', { g: f.int(dev.debt_g), repaid: f.int(dev.debt_repaid_g) })) : null);
  }

  function drawSlots(day, slots) {
    const start = Date.parse(`${day}T00:00:00+09:00`) / 1000;
    const by = new Map(slots.map((s) => [s.slot_start, s]));
    const labels = [];
    const series = [[], [], [], [], []];
    for (let i = 0; i < 48; i++) {
      const s = by.get(start + i * 1800);
      labels.push(f.hhmm(start + i * 1800));
      FINALITIES.forEach((k, n) => series[n].push(s && s.finality === k ? s.standing_g : null));
      series[4].push(s && s.status === 'corrected' ? s.target_g : null);
    }
    setChartData(chart, labels, series);
    const rows = [...slots].sort((a, b) => a.slot_start - b.slot_start);
    fill(slotsBox, rows.length ? table(
      [t('col.slot'), t('col.finality'), numTh(t('site.dgc_gie')), numTh(t('site.sm_ie')), numTh(t('site.tolerance')),
        numTh(t('site.issued_g')), numTh(t('site.standing_g')), t('site.corrections')],
      rows.map((s) => h('tr', { testid: 'slot-row', 'data-slot': f.hhmm(s.slot_start), 'data-finality': s.finality },
        h('td', {}, `${f.hhmm(s.slot_start)}–${f.hhmm(s.slot_start + 1800)}`),
        h('td', {}, finalityBadge(s.finality)),
        num(`${f.kwh(s.dgc.generation_wh)} / ${f.kwh(s.dgc.import_wh)} / ${f.kwh(s.dgc.export_wh)}`),
        num(s.smart_meter ? `${f.kwh(s.smart_meter.import_wh)} / ${f.kwh(s.smart_meter.export_wh)}` : '—'),
        num(s.tolerance ? `± ${f.int(s.tolerance.export_wh)} Wh` : '—'),
        num(f.int(s.issued_g)), num(f.int(s.standing_g)),
        h('td', {}, corrections(s)))),
      { class: 'data' }) : h('p', { class: 'muted' }, t('site.no_slots')));
  }

  function drawControls(list) {
    const rows = [...list].sort((a, b) => a.applied_at - b.applied_at || a.seq - b.seq);
    fill(controlsBox, rows.length ? table(
      [t('col.time'), numTh(t('site.limit')), numTh(t('site.export_cap')), t('site.reason'), t('site.inputs')],
      rows.map((c) => h('tr', { testid: 'control-row', 'data-seq': String(c.seq), 'data-reason': c.reason },
        h('td', {}, f.time(c.applied_at, false)),
        num(f.kw(c.limit_w)),
        num(c.export_cap_w === null ? t('site.none') : f.kw(c.export_cap_w)),
        h('td', {}, h('strong', {}, t(`reason.${c.reason}`))),
        h('td', { class: 'small' }, inputs(c)))),
      { class: 'data' }) : h('p', { class: 'muted' }, t('site.no_controls')));
  }

  return {
    el,
    /** Fetches the device and the day's slots and controls, draws them; returns the controls. */
    async load(day, signal) {
      const path = `/v1/devices/${seg(site)}`;
      const [dev, slots, ctl] = await Promise.all([
        get(path, { signal }),
        get(withQuery(`${path}/slots`, { from: day, to: day, order: 'asc', limit: 48 }), { signal }),
        get(withQuery(`${path}/controls`, { from: day, to: day, limit: 500 }), { signal }),
      ]);
      if (!chart) makeCrevChart();
      drawAlerts(dev);
      drawSlots(day, slots.items);
      controls = ctl.items;
      drawControls(controls);
      return controls;
    },
    get controls() { return controls; },
    destroy() { if (chart) chart.destroy(); chart = null; },
  };
}

export function finalityBadge(finality) {
  const cls = { final: 'good', corrected: 'warn', late: '', provisional: 'provisional' }[finality] || '';
  return h('span', { class: `badge ${cls}`, testid: 'finality', 'data-finality': finality }, t(`finality.${finality}`));
}

function corrections(s) {
  const c = s.corrections;
  const parts = [];
  if (s.status === 'corrected' && s.smart_meter) parts.push(t('site.corrected_to', { g: f.int(s.target_g), wh: f.int(s.smart_meter.export_wh) }));
  if (c.cancelled_g) parts.push(t('site.cancelled', { g: f.int(c.cancelled_g) }));
  if (c.topped_up_g) parts.push(t('site.topped_up', { g: f.int(c.topped_up_g) }));
  if (c.debt_g) parts.push(t('site.debt', { g: f.int(c.debt_g) }));
  if (s.status === 'late') parts.push(t('site.late_note'));
  return parts.length ? parts.join(' · ') : '—';
}

function inputs(c) {
  const x = c.inputs;
  const hidden = new Set((c.redacted || []).map((k) => k.replace(/^inputs\./, '')));
  const money = (k, text) => (hidden.has(k) ? h('span', { class: 'muted', testid: 'withheld' }, t('site.private')) : text);
  const yenPerKwh = (m) => `¥${(m / 1000).toLocaleString('en-US', { maximumFractionDigits: 3 })}/kWh`;
  return h('ul', { class: 'plain' },
    h('li', {}, t('site.in_export_limit'), ' ', x.export_limit_w === null ? t('site.none') : f.kw(x.export_limit_w)),
    h('li', {}, t('site.in_export_value'), ' ', money('export_value_milli_jpy_per_kwh', yenPerKwh(x.export_value_milli_jpy_per_kwh))),
    h('li', {}, t('site.in_crev_price'), ' ', money('crev_price_jpy_per_t', `¥${f.int(x.crev_price_jpy_per_t)}/t`)),
    h('li', {}, t('site.in_curtail_below'), ' ', money('curtail_below_milli_jpy_per_kwh', yenPerKwh(x.curtail_below_milli_jpy_per_kwh))),
    h('li', {}, t('site.in_operator'), ' ', x.operator_limit_pct === null ? t('site.none') : `${x.operator_limit_pct} %`));
}
