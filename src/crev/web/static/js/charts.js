// Chart.js (served from node_modules at /vendor, global `Chart`) behind two helpers, so views
// only describe data. Without the library (npm not installed) a chart becomes a short note and
// the rest of the page still works.

import { t } from './i18n.js';

export const COLORS = {
  solar: '#f0a202',
  self: '#1f9d6b',
  grid: '#8aa0b6',
  claimed: '#0f766e',
  location: '#d1603d',
  market: '#2563eb',
  share: '#7c3aed',
  bid: '#1f9d6b',
  ask: '#d1603d',
  price: '#2563eb',
  volume: '#c7d2de',
  ink: '#1f2933',
  muted: '#66788a',
  line: '#e4e9ef',
};

let themed = false;

function theme(Chart) {
  if (themed) return;
  themed = true;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.font.size = 12;
  Chart.defaults.color = COLORS.muted;
  Chart.defaults.borderColor = COLORS.line;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.plugins.legend.labels.boxWidth = 12;
  Chart.defaults.plugins.tooltip.mode = 'index';
  Chart.defaults.plugins.tooltip.intersect = false;
}

/** Creates a chart on `canvas`; returns the Chart or null when Chart.js is not loaded. */
export function makeChart(canvas, config) {
  const Chart = window.Chart;
  if (!Chart) {
    canvas.replaceWith(Object.assign(document.createElement('p'), { className: 'muted', textContent: t('chart.missing') }));
    return null;
  }
  theme(Chart);
  return new Chart(canvas, config);
}

/** Replaces a chart's labels and dataset values, without animation (used by live refreshes). */
export function setChartData(chart, labels, series) {
  if (!chart) return;
  chart.data.labels = labels;
  series.forEach((data, i) => { if (chart.data.datasets[i]) chart.data.datasets[i].data = data; });
  chart.update('none');
}

export function destroyAll(charts) {
  for (const c of charts) if (c) c.destroy();
  charts.length = 0;
}
