// Number and time formatting. All values from the API are integers (Wh, g-CO2e, JPY, basis
// points, unix seconds); they are turned into text here and nowhere else. Times are always
// shown in JST (UTC+9, no daylight saving) whatever the browser's own time zone is.

const grouped = new Intl.NumberFormat('en-US');
const oneDecimal = new Intl.NumberFormat('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });

export const int = (n) => (n === null || n === undefined ? '—' : grouped.format(n));

/** Basis points as a percentage with two decimals: 838 → "8.38 %". Exact, no float rounding. */
export function bp(n) {
  if (n === null || n === undefined) return '—';
  const sign = n < 0 ? '-' : '';
  const a = Math.abs(n);
  return `${sign}${Math.floor(a / 100)}.${String(a % 100).padStart(2, '0')} %`;
}

/**
 * Grams → kg with one decimal, rounded UP to the next 0.1 kg: reported emissions are ceilings
 * on the ledger (a consumer never under-reports), so the display keeps that direction.
 */
export function kg(g) {
  if (g === null || g === undefined) return '—';
  return oneDecimal.format(Math.ceil(g / 100) / 10);
}

/**
 * C-REV grams → kg with one decimal, rounded DOWN: a reduction value is never overstated
 * (the opposite direction to emissions).
 */
export function creditKg(g) {
  if (g === null || g === undefined) return '—';
  return oneDecimal.format(Math.floor(g / 100) / 10);
}

/** Grams → kg exactly (up to three decimals), for a certificate. */
export const exactKg = (g) => (g / 1000).toLocaleString('en-US', { maximumFractionDigits: 3 });

/** Wh → kWh with one decimal (nearest). */
export const kwh = (wh) => (wh === null || wh === undefined ? '—' : oneDecimal.format(Math.round(wh / 100) / 10));

export const grams = (g) => `${int(g)} g`;
export const jpy = (n) => `¥${int(n)}`;
export const kw = (w) => `${oneDecimal.format(Math.round(w / 100) / 10)} kW`;

/** Shortened hash for tables: the first `n` hex digits and an ellipsis. */
export const hash = (h, n = 10) => (h ? `${h.slice(0, n)}…` : '—');

const JST_MS = 9 * 3600 * 1000;

/** Unix seconds → "YYYY-MM-DD HH:MM:SS JST" (or without seconds when `seconds` is false). */
export function time(unix, seconds = true) {
  if (unix === null || unix === undefined) return '—';
  const iso = new Date(unix * 1000 + JST_MS).toISOString(); // the JST wall clock, labelled Z
  return `${iso.slice(0, 10)} ${iso.slice(11, seconds ? 19 : 16)} JST`;
}

/** An ISO 8601 time with offset ("2026-11-26T07:30:05+09:00") shown in JST. */
export function jst(iso, seconds = true) {
  if (!iso) return '—';
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? iso : time(ms / 1000, seconds);
}

/** Just "HH:MM" in JST. */
export const hhmm = (unix) => new Date(unix * 1000 + JST_MS).toISOString().slice(11, 16);

/** The JST calendar date "YYYY-MM-DD" of a unix time. */
export const jstDate = (unix) => new Date(unix * 1000 + JST_MS).toISOString().slice(0, 10);

/** A JST date string moved by `days`. */
export function addDays(date, days) {
  const ms = Date.parse(`${date}T00:00:00Z`) + days * 86400000;
  return new Date(ms).toISOString().slice(0, 10);
}

/** Japanese fiscal year (April–March) of a JST date string. */
export function fiscalYear(date) {
  const [y, m] = date.split('-').map(Number);
  return m >= 4 ? y : y - 1;
}
