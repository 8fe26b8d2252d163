// Any hash route that is not one of the dashboard's.

import { h, link } from '../js/dom.js';
import { t } from '../js/i18n.js';

export function create({ params }) {
  const el = h('section', { class: 'page' },
    h('div', { class: 'notice', testid: 'not-found' }, t('missing.text', { path: params.path }), ' ', link('#/', t('missing.home'))));
  return { el, title: 'missing.title', async load() {} };
}
