// "#/certificate/{retirement_id}": a printable retirement certificate, always in both languages
// (the toolbar follows the language toggle; the certificate itself does not). Print CSS hides
// everything but the certificate.

import { get, seg } from '../js/api.js';
import { fill, h, link, num, numTh, route, table } from '../js/dom.js';
import * as f from '../js/format.js';
import { both, t } from '../js/i18n.js';

export function create({ params, app }) {
  const id = params.id;
  const body = h('div');
  const el = h('section', { class: 'page certificate-page' }, body);
  return {
    el,
    title: 'cert.title',
    async load(signal) {
      let r;
      try {
        r = await get(`/v1/retirements/${seg(id)}`, { signal });
      } catch (e) {
        if (e.status === 404) {
          fill(body, h('div', { class: 'notice', testid: 'not-found' }, t('cert.not_found', { id })));
          return;
        }
        throw e;
      }
      const pdf = `/v1/retirements/${seg(id)}/certificate.pdf`;
      const traceUrl = `${location.origin}/${route('trace', id)}`;
      const label = (key) => {
        const [en, ja] = both(key);
        return h('th', { scope: 'row' }, h('span', { class: 'ja' }, ja), h('span', { class: 'en' }, en));
      };
      const row = (key, ...value) => h('tr', {}, label(key), h('td', {}, ...value));
      const qr = h('img', { class: 'qr', testid: 'certificate-qr', src: `/v1/retirements/${seg(id)}/qr.svg`,
        width: '160', height: '160', alt: t('cert.qr_alt') });
      const [purposeEn, purposeJa] = both(`purpose.${r.purpose}`);
      fill(body,
        h('div', { class: 'toolbar no-print' },
          h('button', { type: 'button', class: 'btn', onclick: () => window.print() }, t('cert.print')),
          h('a', { class: 'btn', href: pdf, download: `${id}.pdf` }, t('cert.pdf')),
          h('a', { class: 'btn', href: route('trace', id) }, t('cert.trace'))),
        h('article', { class: 'certificate', testid: 'certificate' },
          h('header', { class: 'cert-head' },
            h('div', {},
              h('div', { class: 'cert-kicker' }, 'C-REV'),
              h('h1', {}, h('span', { class: 'ja' }, both('cert.heading')[1]), h('span', { class: 'en' }, both('cert.heading')[0])),
              h('div', { class: 'cert-id' }, h('code', {}, r.retirement_id))),
            h('figure', { class: 'cert-qr' }, qr,
              h('figcaption', {}, h('span', { class: 'ja' }, both('cert.scan')[1]), h('span', { class: 'en' }, both('cert.scan')[0])))),
          h('div', { class: 'cert-qty' },
            h('div', { class: 'cert-qty-label' }, h('span', { class: 'ja' }, both('cert.quantity')[1]), ' / ', both('cert.quantity')[0]),
            h('div', { class: 'cert-qty-value', testid: 'certificate-quantity', 'data-value': String(r.quantity_g) },
              f.int(r.quantity_g), h('span', { class: 'unit' }, ' g-CO2e')),
            h('div', { class: 'cert-qty-sub' }, `= ${f.exactKg(r.quantity_g)} kg-CO2e · 1 C-REV = 1 g-CO2e`)),
          h('table', { class: 'cert-fields' }, h('tbody', {},
            row('cert.beneficiary', h('strong', {}, r.beneficiary)),
            row('cert.account', h('code', {}, r.account)),
            row('cert.purpose', h('span', { class: 'ja' }, purposeJa), purposeEn !== purposeJa ? h('span', { class: 'en' }, purposeEn) : null),
            row('cert.period', `${r.period.first_day_jst} – ${r.period.last_day_jst}`),
            row('cert.jurisdiction', r.jurisdiction || '—'),
            r.note ? row('cert.note', r.note) : null,
            row('cert.retired_at', f.jst(r.retired_at_jst)),
            row('cert.block', `#${r.height}`, ' · ', app.info.chain_id),
            row('cert.tx', h('code', { class: 'hash' }, r.tx_hash)))),
          h('section', { class: 'cert-units' },
            h('h2', {}, h('span', { class: 'ja' }, both('cert.units')[1]), ' / ', both('cert.units')[0]),
            table([both('col.lot').reverse().join(' / '), numTh(both('cert.first').reverse().join(' / ')),
              numTh(both('cert.last').reverse().join(' / ')), numTh(both('col.quantity_g').reverse().join(' / '))],
            r.ranges.map(([lot, a, b]) => [link(route('trace', lot), lot), num(String(a)), num(String(b)), num(f.int(b - a + 1))]),
            { class: 'data compact' })),
          h('footer', { class: 'cert-foot' },
            h('p', {}, h('span', { class: 'ja' }, both('cert.verify')[1]), h('span', { class: 'en' }, both('cert.verify')[0])),
            h('p', {}, link(route('trace', id), h('code', {}, traceUrl))))));
      // The QR image counts as part of the render: wait for it (or its failure) before "ready".
      if (!qr.complete) await new Promise((resolve) => { qr.onload = resolve; qr.onerror = resolve; });
    },
  };
}
