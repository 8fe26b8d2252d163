// "#/fleet": every registered device (DGC) with its owner, place, grid area, FIT status, last
// reading and today's energy. A row leads to the consumer view of that site.

import { get, withQuery } from '../js/api.js';
import { fill, h, num, numTh, route, table } from '../js/dom.js';
import * as f from '../js/format.js';
import { t } from '../js/i18n.js';
import { kpi } from './overview.js';

const PAGE = 500;
const ui = { offset: 0, area: '' }; // kept across a language change

export function create({ app, reason }) {
  if (reason === 'route') Object.assign(ui, { offset: 0, area: '' });
  const kpis = h('div', { class: 'kpis' });
  const areaSelect = h('select', { class: 'switch', 'aria-label': t('col.grid_area') });
  const list = h('div');
  const pager = h('div', { class: 'pager' });
  const el = h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', {}, t('fleet.title')), h('p', { class: 'lead' }, t('fleet.lead'))),
    kpis,
    h('section', { class: 'card' },
      h('div', { class: 'card-head' }, h('h2', {}, t('fleet.devices')), areaSelect),
      list, pager));

  const reload = () => app.reload();
  areaSelect.addEventListener('change', () => { ui.area = areaSelect.value; ui.offset = 0; reload(); });
  let areas = null;

  return {
    el,
    title: 'fleet.title',
    live: ['block'],
    async load(signal) {
      const page = await get(withQuery('/v1/devices', { grid_area: ui.area, offset: ui.offset, limit: PAGE }), { signal });
      const items = page.items;
      if (!areas && !ui.area) {
        // The grid areas present (from this page; a fleet over 500 devices may have more).
        areas = [...new Set(items.map((d) => d.grid_area))].sort();
        fill(areaSelect, h('option', { value: '' }, t('fleet.all_areas')),
          areas.map((a) => h('option', { value: a }, t(`area.${a}`))));
      }
      areaSelect.value = ui.area;
      const sum = (k) => items.reduce((n, d) => n + ((d.today && d.today[k]) || 0), 0);
      const day = items.find((d) => d.today)?.today.date_jst || '';
      fill(kpis,
        kpi(t('fleet.devices'), f.int(page.total), t('fleet.active', { n: f.int(items.filter((d) => d.status === 'active').length) })),
        kpi(t('fleet.capacity'), `${f.int(Math.round(items.reduce((n, d) => n + d.rated_capacity_w, 0) / 1000))} kW`, t('fleet.rated')),
        kpi(t('overview.gen_today'), `${f.kwh(sum('generation_wh'))} kWh`, day ? `${day} JST` : ''),
        kpi(t('overview.self_today'), `${f.kwh(sum('self_consumed_wh'))} kWh`, day ? `${day} JST` : ''));
      fill(list, table(
        [t('col.device'), t('col.owner'), t('col.location'), t('col.grid_area'), t('col.fit'), t('col.status'),
          numTh(t('col.capacity')), t('fleet.last_reading'), numTh(t('fleet.gen_today')), numTh(t('fleet.self_today')),
          numTh(t('fleet.issued'))],
        items.map((d) => {
          const href = route('consumer', d.owner, d.device_id);
          const last = d.last_reading;
          return h('tr', { testid: 'fleet-row', 'data-device': d.device_id, class: `clickable ${d.status === 'active' ? '' : 'revoked'}`,
            tabindex: '0', title: t('fleet.open', { id: d.device_id }),
            onclick: (e) => { if (!e.target.closest('a')) app.navigate(href); },
            onkeydown: (e) => { if (e.key === 'Enter') app.navigate(href); } },
          h('td', {}, h('a', { href }, h('strong', {}, d.device_id))),
          h('td', {}, d.owner),
          h('td', { class: 'nowrap' }, place(d.location)),
          h('td', {}, t(`area.${d.grid_area}`)),
          h('td', {}, d.fit ? t('fleet.fit_yes') : t('fleet.fit_no')),
          h('td', {}, h('span', { class: `badge ${d.status === 'active' ? 'good' : 'bad'}` }, t(`status.${d.status}`)),
            d.drift && d.drift.alert ? [' ', h('span', { class: 'badge warn', testid: 'fleet-drift', title: t(`site.drift_text.${d.drift.direction}`, { n: d.drift.consecutive, after: d.drift.alert_after_slots }) }, t('site.drift_badge'))] : null,
            d.debt_g > 0 ? [' ', h('span', { class: 'badge warn', testid: 'fleet-debt' }, t('fleet.debt', { g: f.int(d.debt_g) }))] : null),
          num(f.kw(d.rated_capacity_w)),
          h('td', { class: 'nowrap' }, last ? f.jst(last.interval_start_jst, false) : '—'),
          num(d.today ? f.kwh(d.today.generation_wh) : '—'),
          num(d.today ? f.kwh(d.today.self_consumed_wh) : '—'),
          num(f.creditKg(d.issued_g || 0)));
        }),
        { class: 'data nowrap-cells', testid: 'fleet-table' }));
      const last = Math.min(page.total, ui.offset + items.length);
      fill(pager, page.total > PAGE ? [
        h('button', { type: 'button', class: 'btn small', disabled: ui.offset === 0, onclick: () => { ui.offset -= PAGE; reload(); } }, t('pager.prev')),
        h('span', { class: 'muted' }, t('pager.range', { a: f.int(ui.offset + 1), b: f.int(last), total: f.int(page.total) })),
        h('button', { type: 'button', class: 'btn small', disabled: last >= page.total, onclick: () => { ui.offset += PAGE; reload(); } }, t('pager.next')),
      ] : h('span', { class: 'muted small' }, t('fleet.note')));
    },
  };
}

/** "name (lat, lon)" or just the coordinates; the API may leave the place's name out. */
function place(loc) {
  if (!loc) return '—';
  const coords = `${Number(loc.lat).toFixed(3)}, ${Number(loc.lon).toFixed(3)}`;
  return loc.name ? [loc.name, ' ', h('span', { class: 'muted small' }, `(${coords})`)] : coords;
}
