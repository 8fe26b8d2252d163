// In-browser verification of a trace (GET /v1/trace/{ident}), independent of the server's own
// "verified" flags, which are never read here. Everything is recomputed from bytes:
//
//  * each block header: SHA-256(header) = block hash, its CBOR fields, the sequencer's Ed25519
//    signature (public key from /v1/info);
//  * each step's transaction: SHA-256(raw) = tx hash, leaf = SHA-256(0x00 ‖ raw), and the
//    RFC 6962 path from that leaf to the tx_root of the decoded header (tree size = tx_count);
//  * each signed reading: SHA-256(reading) = reading hash, its fields, that it sits inside the
//    transaction's bytes, and the device's Ed25519 signature over its first 12 elements;
//  * each state proof: leaf, bucket, siblings up to the state_root of the decoded header, and that
//    the proven record (CBOR) says what the step shows.
//
// On a consortium member's ledger (trace.consortium present) a block has no sequencer signature:
// its authority is CometBFT's commit (docs/wire-format.md §10). Instead of the sequencer check,
// each block is checked through the CometBFT header that carries its app hash:
//
//  * app hash: SHA-256(crev header) = that CometBFT header's app_hash;
//  * header hash: the 14 header fields protobuf-encoded here, their RFC 6962 Merkle root = the
//    block id the commit signs;
//  * validator set: each address = SHA-256(key)[:20], the set's Merkle root over
//    SimpleValidator{pub_key, power} = the header's validators_hash and next_validators_hash
//    (a set that changed is refused: only the genesis set is supported);
//  * commit: every signature slot's CanonicalVote sign bytes built here, verified with Ed25519 by
//    the validator of that slot; the power of the slots voting for the block must exceed
//    ⌊2/3 × total⌋.
//
// The result is a flat list of checks: {where, label: [key, vars], ok, reason: [key, vars] | null}.
// `where` places a check in the page: "block:<h>", "step:<lot>:<step>", "retirement" or "tx".
// Labels and reasons are i18n keys, so this module stays free of any language.

import { compareBytes, concat, ed25519Verify, Ed25519Unsupported, equal, fromHex, indexOf, sha256, toHex, utf8 }
  from './bytes.js';
import { decode, decodeHeader } from './cbor.js';

const LEAF = Uint8Array.of(0x00);
const NODE = Uint8Array.of(0x01);
const BUCKET = Uint8Array.of(0x02);

const short = (hex) => (typeof hex === 'string' ? hex.slice(0, 12) + '…' : String(hex));

/** A failed comparison of two hashes, as a reason. */
const differs = (what, got, want) => ['r.differs', { what, got: short(got), want: short(want) }];

/** A step's JST ISO time ("2026-11-26T07:00:00+09:00") as unix seconds. */
const unix = (iso) => Math.round(Date.parse(iso) / 1000);

/**
 * Walks an RFC 6962 inclusion path exactly as docs/wire-format.md §6 describes.
 * Returns the root, or a reason why the path is malformed.
 */
export async function merkleRoot(leaf, index, size, path) {
  if (!(Number.isInteger(index) && index >= 0 && index < size)) return { reason: ['r.index', { index, size }] };
  let h = leaf;
  let i = index;
  let n = size;
  let used = 0;
  while (n > 1) {
    if (i % 2 === 1 || i + 1 < n) {
      if (used >= path.length) return { reason: ['r.path_short', {}] };
      const p = fromHex(path[used++]);
      h = i % 2 === 1 ? await sha256(NODE, p, h) : await sha256(NODE, h, p);
    } // else: the last, unpaired node moves up unchanged and uses no path hash
    i = Math.floor(i / 2);
    n = Math.floor((n + 1) / 2);
  }
  if (used !== path.length) return { reason: ['r.path_long', { extra: path.length - used }] };
  return { root: h };
}

/** leaf_hash(key, value) of the state tree: SHA-256(0x00 ‖ u16be(len key) ‖ key ‖ value). */
export async function stateLeaf(keyBytes, valueBytes) {
  const len = Uint8Array.of(keyBytes.length >> 8, keyBytes.length & 0xff);
  return sha256(LEAF, len, keyBytes, valueBytes);
}

/** The first `depth` bits of SHA-256(key) as an unsigned integer. */
export async function bucketOf(keyBytes, depth) {
  const h = await sha256(keyBytes);
  let b = 0;
  for (let bit = 0; bit < depth; bit++) {
    b = b * 2 + ((h[bit >> 3] >> (7 - (bit & 7))) & 1);
  }
  return b;
}

// --- CometBFT bytes (consortium mode) ---------------------------------------------------------

/** Protobuf varint of a non-negative integer (Number or BigInt). */
function uvarint(value) {
  let v = BigInt(value);
  if (v < 0n) v += 1n << 64n;
  const out = [];
  while (v >= 0x80n) { out.push(Number((v & 0x7fn) | 0x80n)); v >>= 7n; }
  out.push(Number(v));
  return Uint8Array.from(out);
}
const pbVarint = (num, v) => (BigInt(v) === 0n ? new Uint8Array(0) : concat(uvarint(num << 3), uvarint(v)));
const pbBytes = (num, b) => (b.length === 0 ? new Uint8Array(0) : concat(uvarint((num << 3) | 2), uvarint(b.length), b));
const pbMessage = (num, b) => concat(uvarint((num << 3) | 2), uvarint(b.length), b);
function pbSfixed64(num, v) {
  if (BigInt(v) === 0n) return new Uint8Array(0);
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigInt64(0, BigInt(v), true);
  return concat(uvarint((num << 3) | 1), b);
}
const timestamp = (seconds, nanos) => concat(pbVarint(1, seconds), pbVarint(2, nanos));
const blockIdBytes = (bid) => concat(pbBytes(1, fromHex(bid.hash)),
  pbMessage(2, concat(pbVarint(1, bid.parts.total), pbBytes(2, fromHex(bid.parts.hash)))));

/** RFC 6962 root over raw items (CometBFT's merkle.HashFromByteSlices). */
export async function merkleRootOf(items) {
  if (items.length === 0) return sha256(new Uint8Array(0));
  let level = [];
  for (const x of items) level.push(await sha256(LEAF, x));
  while (level.length > 1) {
    const next = [];
    for (let i = 0; i + 1 < level.length; i += 2) next.push(await sha256(NODE, level[i], level[i + 1]));
    if (level.length % 2) next.push(level[level.length - 1]);
    level = next;
  }
  return level[0];
}

/** The 14 leaves of CometBFT's Header.Hash, from the header's fields. */
export function headerLeaves(h) {
  const wrap = (hex) => pbBytes(1, fromHex(hex));
  return [
    concat(pbVarint(1, h.version.block), pbVarint(2, h.version.app)),
    pbBytes(1, utf8(h.chain_id)),
    pbVarint(1, h.height),
    timestamp(h.time_seconds, h.time_nanos),
    blockIdBytes(h.last_block_id),
    wrap(h.last_commit_hash), wrap(h.data_hash), wrap(h.validators_hash), wrap(h.next_validators_hash),
    wrap(h.consensus_hash), wrap(h.app_hash), wrap(h.last_results_hash), wrap(h.evidence_hash),
    wrap(h.proposer_address),
  ];
}

/** Precommit sign bytes: uvarint(length) ‖ CanonicalVote (block id left out for a nil vote). */
export function voteSignBytes(chainId, commit, sig) {
  const body = concat(
    pbVarint(1, 2), pbSfixed64(2, commit.height), pbSfixed64(3, commit.round),
    sig.flag === 2 ? pbMessage(4, blockIdBytes(commit.block_id)) : new Uint8Array(0),
    pbMessage(5, timestamp(sig.timestamp_seconds, sig.timestamp_nanos)), pbBytes(6, utf8(chainId)));
  return concat(uvarint(body.length), body);
}

/** The validator set as CometBFT orders and hashes it; null with a reason if malformed. */
async function validatorSet(vs) {
  const vals = [];
  for (const v of (vs && vs.validators) || []) {
    const key = fromHex(v.pub_key);
    const address = toHex((await sha256(key)).subarray(0, 20));
    vals.push({ key, address, power: Number(v.power), name: v.name || address.slice(0, 12),
      claimed: v.address });
  }
  vals.sort((a, b) => (b.power - a.power) || (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  const leaves = vals.map((v) => concat(pbMessage(1, pbBytes(1, v.key)), pbVarint(2, v.power)));
  const total = vals.reduce((n, v) => n + v.power, 0);
  return { vals, total, needed: Math.floor((total * 2) / 3), hash: toHex(await merkleRootOf(leaves)) };
}

class Verifier {
  constructor(trace, info) {
    this.trace = trace;
    this.info = info;
    this.blocks = trace.blocks || {};
    this.checks = [];
    this.headers = new Map(); // height → {ok, header} once its own checks ran
    this.txBytes = new Map(); // raw hex → {raw, hash, leaf}
  }

  add(where, label, ok, reason = null) {
    this.checks.push({ where, label, ok: Boolean(ok), reason: ok ? null : reason });
    return Boolean(ok);
  }

  /** Checks every block header the trace carries (once each). */
  async checkBlocks() {
    const seqKey = this.info && this.info.sequencer_public_key;
    for (const [key, b] of Object.entries(this.blocks)) {
      const h = Number(key);
      const where = `block:${h}`;
      let bytes;
      let header = null;
      let ok = true;
      try {
        bytes = fromHex(b.header);
      } catch {
        this.add(where, ['chk.block_hash', { h }], false, ['r.not_hex', { what: 'header' }]);
        this.headers.set(h, { ok: false, header: null });
        continue;
      }
      const hash = toHex(await sha256(bytes));
      ok = this.add(where, ['chk.block_hash', { h }], hash === b.hash, differs('SHA-256(header)', hash, b.hash)) && ok;
      try {
        header = decodeHeader(bytes);
        const problems = [];
        if (this.info && header.chainId !== this.info.chain_id) problems.push(`chain_id ${header.chainId}`);
        if (Number(header.height) !== h) problems.push(`height ${header.height}`);
        ok = this.add(where, ['chk.block_fields', { h }], problems.length === 0,
          ['r.fields', { fields: problems.join(', ') }]) && ok;
      } catch (e) {
        ok = this.add(where, ['chk.block_fields', { h }], false, ['r.decode', { msg: e.message }]) && false;
      }
      if (this.trace.consortium) ok = await this.consortiumBlock(where, h, bytes) && ok;
      else ok = await this.signature(where, ['chk.block_sig', { h }], seqKey, bytes, b.signature) && ok;
      this.headers.set(h, { ok, header });
    }
  }

  /** The genesis validator set the trace carries, checked once (addresses, the info's hash if any). */
  async consortiumSet() {
    if (this.valset !== undefined) return this.valset;
    const c = this.trace.consortium;
    let set = null;
    try {
      set = await validatorSet(c.validator_set);
      const wrong = set.vals.filter((v) => v.claimed && v.claimed.toLowerCase() !== v.address).map((v) => v.name);
      const want = this.info && (this.info.validators_hash || (this.info.consortium || {}).validators_hash);
      if (want && want.toLowerCase() !== set.hash) wrong.push(`hash ${short(set.hash)} ≠ ${short(want)}`);
      if (set.vals.length === 0) wrong.push('empty');
      if (!this.add('consortium', ['chk.cmt_valset', { n: set.vals.length, hash: short(set.hash), total: set.total }],
        wrong.length === 0, ['r.fields', { fields: wrong.join(', ') }])) set = null;
    } catch (e) {
      this.add('consortium', ['chk.cmt_valset', { n: 0, hash: '', total: 0 }], false, ['r.decode', { msg: e.message }]);
      set = null;
    }
    this.valset = set;
    return set;
  }

  /** Crev block h (its header bytes) against the CometBFT header carrying its app hash and the commit. */
  async consortiumBlock(where, h, crevHeader) {
    const c = this.trace.consortium;
    const p = (c.blocks || {})[String(h)];
    if (!p) return this.add(where, ['chk.cmt_commit', { h, ch: '?' }], false, ['r.no_commit', { h }]);
    const set = await this.consortiumSet();
    if (!set) return this.add(where, ['chk.cmt_commit', { h, ch: '?' }], false, ['r.no_valset', {}]);
    const hd = p.header;
    const cm = p.commit;
    const ch = hd.height;
    let ok = true;
    try {
      const app = toHex(await sha256(crevHeader));
      ok = this.add(where, ['chk.cmt_app_hash', { h, ch }], app === String(hd.app_hash).toLowerCase(),
        differs('app_hash', hd.app_hash, app)) && ok;
      const chain = this.info && this.info.chain_id;
      const fields = [];
      if (chain && hd.chain_id !== chain) fields.push(`chain_id ${hd.chain_id}`);
      if (cm.height !== ch) fields.push(`commit height ${cm.height}`);
      for (const f of ['validators_hash', 'next_validators_hash']) {
        if (String(hd[f]).toLowerCase() !== set.hash) fields.push(`${f} ${short(hd[f])} (validator set changed?)`);
      }
      ok = this.add(where, ['chk.cmt_fields', { ch }], fields.length === 0, ['r.fields', { fields: fields.join(', ') }]) && ok;
      const root = toHex(await merkleRootOf(headerLeaves(hd)));
      ok = this.add(where, ['chk.cmt_header_hash', { ch }], root === String(cm.block_id.hash).toLowerCase(),
        differs('Merkle root of the header fields', root, cm.block_id.hash)) && ok;
      const sigs = cm.signatures || [];
      if (sigs.length !== set.vals.length) {
        return this.add(where, ['chk.cmt_power', { ch, signed: 0, total: set.total, needed: set.needed }], false,
          ['r.fields', { fields: `${sigs.length} signature slots for ${set.vals.length} validators` }]) && false;
      }
      let power = 0;
      for (let i = 0; i < sigs.length; i++) {
        const s = sigs[i];
        const v = set.vals[i];
        if (s.flag === 1) continue; // absent: nothing signed
        const label = ['chk.cmt_sig', { who: v.name, ch }];
        if (String(s.validator_address).toLowerCase() !== v.address) {
          ok = this.add(where, label, false, differs('validator_address', s.validator_address, v.address)) && false;
          continue;
        }
        const good = await this.signature(where, label, toHex(v.key), voteSignBytes(hd.chain_id, cm, s), s.signature);
        ok = good && ok;
        if (good && s.flag === 2) power += v.power;
      }
      ok = this.add(where, ['chk.cmt_power', { ch, signed: power, total: set.total, needed: set.needed }],
        power > set.needed, ['r.power', { signed: power, total: set.total, needed: set.needed }]) && ok;
    } catch (e) {
      ok = this.add(where, ['chk.cmt_commit', { h, ch }], false, ['r.decode', { msg: String(e && e.message || e) }]) && false;
    }
    return ok;
  }

  /** One Ed25519 check; records it and returns whether it passed. */
  async signature(where, label, keyHex, message, sigHex) {
    let key;
    let sig;
    try {
      key = fromHex(keyHex || '');
      sig = fromHex(sigHex || '');
    } catch {
      return this.add(where, label, false, ['r.not_hex', { what: 'key/signature' }]);
    }
    if (key.length !== 32) return this.add(where, label, false, ['r.no_key', {}]);
    try {
      const good = await ed25519Verify(key, message, sig);
      return this.add(where, label, good, ['r.bad_signature', {}]);
    } catch (e) {
      if (e instanceof Ed25519Unsupported) return this.add(where, label, false, ['r.no_ed25519', {}]);
      return this.add(where, label, false, ['r.decode', { msg: String(e && e.message || e) }]);
    }
  }

  /** The header of block h, if the trace carries it and it passed its own checks. */
  trusted(where, h, label) {
    const blk = this.headers.get(Number(h));
    if (!blk) { this.add(where, label, false, ['r.no_block', { h }]); return null; }
    if (!blk.ok || !blk.header) { this.add(where, label, false, ['r.block_failed', { h }]); return null; }
    return blk.header;
  }

  async tx(rawHex) {
    let entry = this.txBytes.get(rawHex);
    if (!entry) {
      const raw = fromHex(rawHex);
      entry = { raw, hash: toHex(await sha256(raw)), leaf: await sha256(LEAF, raw) };
      this.txBytes.set(rawHex, entry);
    }
    return entry;
  }

  /** A transaction inclusion proof; returns the raw transaction bytes (or null). */
  async proof(where, p, rawHex, stepTxHash, stepHeight) {
    const h = p.height;
    let t;
    try {
      t = await this.tx(rawHex);
    } catch {
      this.add(where, ['chk.tx_hash', {}], false, ['r.not_hex', { what: 'raw' }]);
      return null;
    }
    const want = stepTxHash || p.tx_hash;
    this.add(where, ['chk.tx_hash', {}], t.hash === p.tx_hash && t.hash === want,
      differs('SHA-256(tx)', t.hash, t.hash === p.tx_hash ? want : p.tx_hash));
    const leafHex = toHex(t.leaf);
    this.add(where, ['chk.tx_leaf', {}], leafHex === p.leaf, differs('SHA-256(0x00‖tx)', leafHex, p.leaf));
    const label = ['chk.tx_inclusion', { h, index: p.index }];
    if (stepHeight !== undefined && stepHeight !== h) {
      // The page links the step to block stepHeight: the proof must be about that block.
      this.add(where, label, false, ['r.fields', { fields: `height ${stepHeight} ≠ ${h}` }]);
      return t.raw;
    }
    const header = this.trusted(where, h, label);
    if (!header) return t.raw;
    const count = Number(header.txCount);
    if (p.size !== count) {
      this.add(where, label, false, ['r.size', { size: p.size, count }]);
      return t.raw;
    }
    let walked;
    try {
      // The leaf is the one computed from the bytes, not the one the proof claims.
      walked = await merkleRoot(t.leaf, p.index, count, p.path || []);
    } catch {
      walked = { reason: ['r.not_hex', { what: 'path' }] };
    }
    if (walked.reason) this.add(where, label, false, walked.reason);
    else {
      const got = toHex(walked.root);
      const root = toHex(header.txRoot);
      this.add(where, label, got === root, differs('root', got, root));
    }
    return t.raw;
  }

  /** A signed reading step; returns its computed reading hash (or null). */
  async reading(where, step, rawTx) {
    let bytes;
    try {
      bytes = fromHex(step.reading_bytes || '');
    } catch {
      this.add(where, ['chk.reading_hash', {}], false, ['r.not_hex', { what: 'reading_bytes' }]);
      return null;
    }
    if (bytes.length === 0) {
      this.add(where, ['chk.reading_hash', {}], false, ['r.missing', { what: 'reading_bytes' }]);
      return null;
    }
    const hash = toHex(await sha256(bytes));
    this.add(where, ['chk.reading_hash', {}], hash === step.reading_hash, differs('SHA-256(reading)', hash, step.reading_hash));

    let r = null;
    try {
      r = decode(bytes);
      if (!Array.isArray(r) || r.length !== 13) throw new Error('a reading is an array of 13 elements');
    } catch (e) {
      this.add(where, ['chk.reading_fields', {}], false, ['r.decode', { msg: e.message }]);
    }
    if (r) {
      const want = [
        ['version', 'crev/reading/1'], ['chain_id', this.info && this.info.chain_id], ['device_id', step.device_id],
        ['seq', step.seq], ['interval_start', unix(step.interval_start_jst)], ['interval_s', step.interval_s],
        ['generation_wh', step.generation_wh], ['import_wh', step.import_wh], ['export_wh', step.export_wh],
      ];
      const wrong = [];
      want.forEach(([name, value], i) => { if (r[i] !== value) wrong.push(`${name}=${r[i]}`); });
      if (step.signature && toHex(r[12]) !== step.signature) wrong.push('signature');
      this.add(where, ['chk.reading_fields', {}], wrong.length === 0, ['r.fields', { fields: wrong.join(', ') }]);
    }
    if (rawTx) {
      this.add(where, ['chk.reading_in_tx', {}], indexOf(rawTx, bytes) >= 0, ['r.not_in_tx', {}]);
    }
    // signed bytes = the first 12 elements: array head 0x8d → 0x8c, drop 0x58 0x40 + 64-byte signature.
    const n = bytes.length;
    const label = ['chk.device_sig', { device: step.device_id }];
    if (n < 67 || bytes[0] !== 0x8d || bytes[n - 66] !== 0x58 || bytes[n - 65] !== 0x40) {
      this.add(where, label, false, ['r.decode', { msg: 'not a 13-element reading ending in a 64-byte signature' }]);
    } else {
      const signed = concat(Uint8Array.of(0x8c), bytes.subarray(1, n - 66));
      await this.signature(where, label, step.device_public_key, signed, toHex(bytes.subarray(n - 64)));
    }
    return hash;
  }

  /**
   * A state proof (wire-format.md §7) against the decoded header of block sp.block_height;
   * `expect(value)` then says whether the proven record matches the page (null = it does).
   */
  async stateProof(where, sp, expect) {
    const h = sp.block_height;
    const label = ['chk.state_proof', { key: sp.key, h }];
    const depth = this.info ? this.info.state_tree_depth : sp.depth;
    const fail = (reason) => this.add(where, label, false, reason);
    try {
      if (sp.depth !== depth) return fail(['r.depth', { depth: sp.depth, want: depth }]);
      const key = utf8(sp.key);
      const bucket = await bucketOf(key, depth);
      if (bucket !== sp.bucket) return fail(['r.bucket', { bucket: sp.bucket, want: bucket }]);
      const entries = (sp.bucket_entries || []).map((e) => (Array.isArray(e)
        ? { key: utf8(e[0]), leaf: fromHex(e[1]) } : { key: utf8(e.key), leaf: fromHex(e.leaf_hash) }));
      for (let i = 1; i < entries.length; i++) {
        if (compareBytes(entries[i - 1].key, entries[i].key) >= 0) return fail(['r.order', {}]);
      }
      const siblings = (sp.siblings || []).map(fromHex);
      if (siblings.length !== depth) return fail(['r.siblings', { n: siblings.length, depth }]);
      const mine = entries.find((e) => equal(e.key, key));
      let value = null;
      if (sp.value === null || sp.value === undefined) {
        if (mine) return fail(['r.present', {}]);
      } else {
        value = fromHex(sp.value);
        if (!mine) return fail(['r.absent', {}]);
        const leaf = await stateLeaf(key, value);
        if (!equal(leaf, mine.leaf)) return fail(differs('leaf_hash(key, value)', toHex(leaf), toHex(mine.leaf)));
      }
      let node = await sha256(BUCKET, ...entries.map((e) => e.leaf));
      let b = bucket;
      for (const s of siblings) {
        node = b % 2 === 1 ? await sha256(NODE, s, node) : await sha256(NODE, node, s);
        b = Math.floor(b / 2);
      }
      const header = this.trusted(where, h, label);
      if (!header) return false;
      const got = toHex(node);
      const root = toHex(header.stateRoot);
      if (!this.add(where, label, got === root, differs('state root', got, root))) return false;
      if (expect && value) {
        let problem;
        try {
          problem = expect(decode(value));
        } catch (e) {
          problem = ['r.decode', { msg: e.message }];
        }
        this.add(where, ['chk.state_record', { key: sp.key }], !problem, problem);
      }
      return true;
    } catch (e) {
      return fail(['r.decode', { msg: String(e && e.message || e) }]);
    }
  }
}

const mismatch = (fields) => (fields.length ? ['r.fields', { fields: fields.join(', ') }] : null);

/** What a lot record `l/<lot>` must say, given the lot's steps as shown. */
function lotExpectation(lot, readingHash) {
  const issued = lot.steps.find((s) => s.step === 'issued');
  const current = lot.steps.find((s) => s.step === 'current_state');
  return (v) => {
    const wrong = [];
    if (!Array.isArray(v) || v.length < 22) return ['r.decode', { msg: 'not a lot record' }];
    if (v[0] !== lot.lot_id) wrong.push(`lot_id=${v[0]}`);
    if (issued) {
      if (issued.units && v[1] !== issued.units[0]) wrong.push(`first_unit=${v[1]}`);
      if (v[2] !== issued.quantity_g) wrong.push(`quantity_g=${v[2]}`);
    }
    if (readingHash && v[18] instanceof Uint8Array && toHex(v[18]) !== readingHash) wrong.push('reading_hash');
    // Every segment shown must be one of the record's [start, end), holder, status, ref.
    for (const seg of (current && current.segments) || []) {
      const [a, b] = seg.units;
      const found = (v[21] || []).some((r) => r[0] === a && r[1] === b + 1 && r[2] === seg.holder
        && r[3] === seg.status && r[4] === seg.ref);
      if (!found) wrong.push(`segment ${a}–${b}`);
    }
    return mismatch(wrong);
  };
}

/** What a reading record `r/<device>/<seq>` must say: [interval_start, reading_hash, lot_id, height]. */
function readingExpectation(step, readingHash) {
  return (v) => {
    if (!Array.isArray(v) || v.length !== 4) return ['r.decode', { msg: 'not a reading record' }];
    const wrong = [];
    if (v[0] !== unix(step.interval_start_jst)) wrong.push(`interval_start=${v[0]}`);
    if (!(v[1] instanceof Uint8Array) || toHex(v[1]) !== readingHash) wrong.push('reading_hash');
    if (v[3] !== step.height) wrong.push(`height=${v[3]}`);
    return mismatch(wrong);
  };
}

/** What a retirement record `t/<id>` must say. */
function retirementExpectation(ret) {
  return (v) => {
    if (!Array.isArray(v) || v.length < 13) return ['r.decode', { msg: 'not a retirement record' }];
    const wrong = [];
    if (v[0] !== ret.retirement_id) wrong.push(`retirement_id=${v[0]}`);
    if (v[1] !== ret.account) wrong.push(`account=${v[1]}`);
    if (v[2] !== ret.beneficiary) wrong.push('beneficiary');
    if (v[9] !== ret.quantity_g) wrong.push(`quantity_g=${v[9]}`);
    if (!(v[12] instanceof Uint8Array) || toHex(v[12]) !== ret.tx_hash) wrong.push('tx_hash');
    const ranges = (v[8] || []).map((r) => `${r[0]}:${r[1]}-${Number(r[2]) - 1}`).join(' ');
    const shown = (ret.ranges || []).map((r) => `${r[0]}:${r[1]}-${r[2]}`).join(' ');
    if (ranges !== shown) wrong.push('ranges');
    return mismatch(wrong);
  };
}

const pause = () => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * Verifies everything a trace carries. `info` is GET /v1/info (chain id, sequencer key, tree depth).
 * `onProgress(done, total)` is called now and then; the page stays responsive meanwhile.
 */
export async function verifyTrace(trace, info, onProgress = () => {}) {
  const v = new Verifier(trace, info);
  const lots = trace.lots || [];
  // each transaction's bytes are sent once, keyed by hash (older answers put them in each proof)
  const rawOf = (p) => p.raw || (trace.raw_txs || {})[p.tx_hash] || '';
  const total = lots.reduce((n, lot) => n + lot.steps.length, 0) + 2;
  let done = 0;
  const tick = async () => {
    done += 1;
    if (done % 40 === 0) { onProgress(done, total); await pause(); }
  };

  await v.checkBlocks();
  await tick();

  for (let li = 0; li < lots.length; li++) {
    const lot = lots[li];
    let lotReadingHash = null;
    for (let si = 0; si < lot.steps.length; si++) {
      const step = lot.steps[si];
      const where = `step:${li}:${si}`;
      let raw = null;
      if (step.proof) raw = await v.proof(where, step.proof, rawOf(step.proof), step.tx_hash, step.height);
      let readingHash = null;
      if (step.step === 'signed_reading') {
        readingHash = await v.reading(where, step, raw);
        if (step.role !== 'carried_into_this_lot') lotReadingHash = readingHash;
      }
      if (step.state_proof) {
        let expect = null;
        if (step.step === 'signed_reading' && readingHash) expect = readingExpectation(step, readingHash);
        else if (step.state_proof.key === `l/${lot.lot_id}`) expect = lotExpectation(lot, lotReadingHash);
        await v.stateProof(where, step.state_proof, expect);
      }
      await tick();
    }
  }

  const ret = trace.retirement;
  if (ret) {
    if (ret.proof) await v.proof('retirement', ret.proof, rawOf(ret.proof), ret.tx_hash, ret.height);
    if (ret.state_proof) await v.stateProof('retirement', ret.state_proof, retirementExpectation(ret));
  }
  const t = trace.transaction;
  if (t && t.proof) await v.proof('tx', t.proof, t.proof.raw || t.raw || '', t.tx_hash, t.height);
  await tick();
  onProgress(total, total);

  // Nothing checked is not a pass: a trace must carry at least one proof.
  if (v.checks.length === 0) v.add('trace', ['chk.nothing', {}], false, ['r.nothing', {}]);
  const failed = v.checks.filter((c) => !c.ok).length;
  return { checks: v.checks, failed, passed: v.checks.length - failed, ok: failed === 0 };
}
