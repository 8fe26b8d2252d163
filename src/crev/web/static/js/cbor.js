// A minimal decoder for crev's canonical CBOR (docs/wire-format.md §1): unsigned and negative
// integers, byte strings, UTF-8 text strings, arrays, false and true. Anything else (maps, tags,
// floats, null, indefinite lengths) is refused, and so is any non-shortest head or trailing
// byte: a value has exactly one encoding, which is what makes its hash meaningful.
//
// Integers up to 2^53 − 1 come back as numbers, larger ones as BigInt.

const textDecoder = new TextDecoder('utf-8', { fatal: true });

export class CborError extends Error {}

/** Decodes one data item that must span all of `bytes`. */
export function decode(bytes) {
  const reader = { bytes, at: 0 };
  const value = item(reader, 0);
  if (reader.at !== bytes.length) throw new CborError(`${bytes.length - reader.at} trailing bytes`);
  return value;
}

const MAX_DEPTH = 64;

function need(r, n) {
  if (r.at + n > r.bytes.length) throw new CborError('truncated');
}

/** Reads a head: [major type, argument]. The argument is a number or, above 2^53 − 1, a BigInt. */
function head(r) {
  need(r, 1);
  const first = r.bytes[r.at++];
  const major = first >> 5;
  const info = first & 0x1f;
  if (info < 24) return [major, info, first];
  if (info > 27) throw new CborError(`additional information ${info} is not allowed (indefinite or reserved)`);
  const width = 1 << (info - 24); // 1, 2, 4 or 8 bytes
  need(r, width);
  let n = 0n;
  for (let i = 0; i < width; i++) n = (n << 8n) | BigInt(r.bytes[r.at++]);
  // Shortest form: a 1-byte argument must be ≥ 24, a wider one must not fit in half its width.
  const min = width === 1 ? 24n : 1n << BigInt(4 * width);
  if (n < min) throw new CborError('non-canonical (longer than necessary) head');
  return [major, n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n, first];
}

function length(n) {
  if (typeof n !== 'number') throw new CborError('length too large');
  return n;
}

function item(r, depth) {
  if (depth > MAX_DEPTH) throw new CborError('nested too deeply');
  const [major, arg, first] = head(r);
  switch (major) {
    case 0:
      return arg;
    case 1:
      return typeof arg === 'number' && arg < Number.MAX_SAFE_INTEGER ? -1 - arg : -1n - BigInt(arg);
    case 2: {
      const n = length(arg);
      need(r, n);
      const out = r.bytes.slice(r.at, r.at + n);
      r.at += n;
      return out;
    }
    case 3: {
      const n = length(arg);
      need(r, n);
      let text;
      try {
        text = textDecoder.decode(r.bytes.subarray(r.at, r.at + n));
      } catch {
        throw new CborError('text is not valid UTF-8');
      }
      r.at += n;
      return text;
    }
    case 4: {
      const n = length(arg);
      const out = [];
      for (let i = 0; i < n; i++) out.push(item(r, depth + 1));
      return out;
    }
    case 7:
      if (first === 0xf4) return false;
      if (first === 0xf5) return true;
      throw new CborError(`simple value or float 0x${first.toString(16)} is not allowed`);
    default:
      throw new CborError(major === 5 ? 'maps are not allowed' : 'tags are not allowed');
  }
}

/** The block header array, named (wire-format.md §5). Throws unless it has the documented shape. */
export function decodeHeader(bytes) {
  const h = decode(bytes);
  const isBytes32 = (x) => x instanceof Uint8Array && x.length === 32;
  const isUint = (x) => (typeof x === 'number' && Number.isInteger(x) && x >= 0) || typeof x === 'bigint';
  if (!Array.isArray(h) || h.length !== 9) throw new CborError('a header is an array of 9 elements');
  const [version, chainId, height, time, prevHash, txRoot, resultsRoot, stateRoot, txCount] = h;
  if (version !== 'crev/block/1') throw new CborError(`version ${JSON.stringify(version)}`);
  if (typeof chainId !== 'string' || !isUint(height) || !isUint(time) || !isUint(txCount)
      || ![prevHash, txRoot, resultsRoot, stateRoot].every(isBytes32)) {
    throw new CborError('a header field has the wrong type');
  }
  return { version, chainId, height, time, prevHash, txRoot, resultsRoot, stateRoot, txCount };
}
