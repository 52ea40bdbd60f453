// Transparency-log verification in the browser: the same checks as sealtrail's Python core
// (core/b64.py, core/merkle/hashing.py, core/merkle/verify.py, core/note.py,
// core/checkpoint.py, core/proofs.py), with WebCrypto for SHA-256 and Ed25519.
//
// Pure: no DOM, no fetch. Everything that decides is here so it can be checked against the
// Python implementation on real proofs (tests/ui/test_event_proof.py). Verification throws a
// TlogError whose `reason` is a short machine word (format, signature, inclusion,
// consistency, leaf-hash); computation returns.
//
// Formats: docs/formats.md. Merkle tree: RFC 6962 / RFC 9162 §2.1 (leaf = SHA-256(0x00||leaf),
// node = SHA-256(0x01||l||r)); inclusion RFC 9162 §2.1.3.2, consistency §2.1.4.2. Notes: C2SP
// signed-note with Ed25519; checkpoints: C2SP tlog-checkpoint. Tree sizes and indexes are
// BigInt internally: the bit arithmetic of the proofs needs 64 bits, JS numbers give 32.

export const HASH_SIZE = 32;
export const MAX_NOTE_BYTES = 1 << 20;
export const MAX_SIGNATURES = 100;
export const MAX_PROOF_HASHES = 64;
const ALG_ED25519 = 0x01;
const SIG_PREFIX = "\u2014 ";
const MAX_U64 = (1n << 64n) - 1n;

/** A failed check or malformed input; `reason` says which check, for data-proof-reason. */
export class TlogError extends Error {
  constructor(reason, message) {
    super(message);
    this.name = "TlogError";
    this.reason = reason;
  }
}

// ---------------------------------------------------------------- bytes, base64, hashing

const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard, padded base64 of bytes. */
export function b64encode(bytes) {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/**
 * Decode canonical standard base64 or throw (reason `format`) naming `what`.
 * As core/b64.py: a text that decodes but does not re-encode identically (non-zero padding
 * bits) is refused, so every text has exactly one meaning.
 */
export function b64decode(text, what = "base64") {
  if (typeof text !== "string" || !B64_RE.test(text)) {
    throw new TlogError("format", `${what}: not valid base64`);
  }
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  if (b64encode(out) !== text) throw new TlogError("format", `${what}: not canonical base64`);
  return out;
}

/** Lowercase hex of bytes. */
export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Bytes of lowercase or uppercase hex (even length), or throw. */
export function unhex(text, what = "hex") {
  if (typeof text !== "string" || !/^(?:[0-9a-fA-F]{2})*$/.test(text)) {
    throw new TlogError("format", `${what}: not hex`);
  }
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Concatenate byte arrays. */
export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Equal byte arrays (not secret data: proofs and signatures are public). */
export function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** UTF-8 bytes of a string. */
export function utf8(text) {
  return new TextEncoder().encode(text);
}

/** SHA-256 of bytes, with WebCrypto. */
export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);

/** The RFC 6962 leaf hash of one entry's exact bytes: SHA-256(0x00 || leaf). */
export function leafHash(leaf) {
  return sha256(concat(LEAF_PREFIX, leaf));
}

/** The RFC 6962 interior node hash: SHA-256(0x01 || left || right). */
export function nodeHash(left, right) {
  return sha256(concat(NODE_PREFIX, left, right));
}

// ---------------------------------------------------------------- integers

/** A non-negative integer (safe Number or BigInt up to 2^64-1) as BigInt, or throw. */
export function toBig(value, what, reason = "format") {
  if (typeof value === "bigint") {
    if (value < 0n || value > MAX_U64) throw new TlogError(reason, `${what} is out of range`);
    return value;
  }
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new TlogError(reason, `${what} must be a non-negative integer`);
  }
  return BigInt(value);
}

function bitLength(n) {
  return n === 0n ? 0 : n.toString(2).length;
}

function popCount(n) {
  let c = 0;
  for (const ch of n.toString(2)) if (ch === "1") c++;
  return c;
}

function checkHashes(hashes, what, reason) {
  if (!Array.isArray(hashes)) throw new TlogError(reason, `${what} must be a list of hashes`);
  hashes.forEach((h, i) => {
    if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE) {
      throw new TlogError(reason, `${what} hash ${i} has ${h?.length} bytes, want ${HASH_SIZE}`);
    }
  });
}

// ---------------------------------------------------------------- inclusion (RFC 9162 §2.1.3.2)

/**
 * The root an audit path implies for leaf hash `leaf` at `index` in a tree of `size`.
 * Throws (reason `inclusion`) if the proof is malformed: index outside the tree, a hash not
 * 32 bytes, or a path length other than exactly what (index, size) imply.
 */
export async function rootFromInclusionProof(index, size, leaf, proof) {
  const m = toBig(index, "leaf index", "inclusion");
  const n = toBig(size, "tree size", "inclusion");
  if (n <= 0n || m >= n) {
    throw new TlogError("inclusion", `leaf index ${m} is outside a tree of size ${n}`);
  }
  if (!(leaf instanceof Uint8Array) || leaf.length !== HASH_SIZE) {
    throw new TlogError("inclusion", `leaf hash has ${leaf?.length} bytes, want ${HASH_SIZE}`);
  }
  checkHashes(proof, "proof", "inclusion");
  // The path splits into `inner` hashes below the right border (chained by the index bits)
  // and `border` hashes on the tree's right border (always hashed on the left).
  const inner = bitLength(m ^ (n - 1n));
  const border = popCount(m >> BigInt(inner));
  if (proof.length !== inner + border) {
    throw new TlogError("inclusion", `proof for index ${m} in size ${n} needs ` +
      `${inner + border} hashes, has ${proof.length}`);
  }
  let r = leaf;
  for (let i = 0; i < inner; i++) {
    r = (m >> BigInt(i)) & 1n ? await nodeHash(proof[i], r) : await nodeHash(r, proof[i]);
  }
  for (const h of proof.slice(inner)) r = await nodeHash(h, r);
  return r;
}

/** Throw (reason `inclusion`) unless `proof` shows leaf hash `leaf` at `index` in `root`. */
export async function verifyInclusion(index, size, leaf, proof, root) {
  const calculated = await rootFromInclusionProof(index, size, leaf, proof);
  if (!bytesEqual(calculated, root)) {
    throw new TlogError("inclusion", `inclusion proof for index ${index} in size ${size} ` +
      "does not lead to the root");
  }
}

// ---------------------------------------------------------------- consistency (RFC 9162 §2.1.4.2)

/** The [first, second] roots a consistency proof implies (0 < first < second). */
export async function rootsFromConsistencyProof(first, second, firstRoot, proof) {
  const m = toBig(first, "first size", "consistency");
  const n = toBig(second, "second size", "consistency");
  if (!(0n < m && m < n)) {
    throw new TlogError("consistency", `no consistency proof exists for sizes ${m} -> ${n}`);
  }
  if (!(firstRoot instanceof Uint8Array) || firstRoot.length !== HASH_SIZE) {
    throw new TlogError("consistency", `first root has ${firstRoot?.length} bytes`);
  }
  checkHashes(proof, "proof", "consistency");
  // Steps 1-2: an empty path fails; a power-of-two first size is its own first node.
  if (proof.length === 0) throw new TlogError("consistency", "empty consistency proof");
  const path = (m & (m - 1n)) === 0n ? [firstRoot, ...proof] : [...proof];
  let fn = m - 1n;
  let sn = n - 1n;
  // Steps 3-4.
  while (fn & 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  // Step 5.
  let fr = path[0];
  let sr = path[0];
  // Step 6.
  for (const c of path.slice(1)) {
    if (sn === 0n) throw new TlogError("consistency", "consistency proof is too long");
    if (fn & 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      if (!(fn & 1n)) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  // Step 7 (the root comparison is the caller's).
  if (sn !== 0n) throw new TlogError("consistency", "consistency proof is too short");
  return [fr, sr];
}

/**
 * Throw (reason `consistency`) unless `proof` shows tree `secondRoot` extends `firstRoot`.
 * Edge cases as docs/formats.md: first == second verifies only with an empty proof and equal
 * roots; first == 0 only with an empty proof; first > second fails.
 */
export async function verifyConsistency(first, second, firstRoot, secondRoot, proof) {
  const m = toBig(first, "first size", "consistency");
  const n = toBig(second, "second size", "consistency");
  if (n < m) throw new TlogError("consistency", `no consistency proof exists for ${m} -> ${n}`);
  if (m === n || m === 0n) {
    if (!Array.isArray(proof) || proof.length !== 0) {
      throw new TlogError("consistency", `sizes ${m} -> ${n} take an empty proof`);
    }
    if (m === n && !bytesEqual(firstRoot, secondRoot)) {
      throw new TlogError("consistency", `two different roots for the same size ${m}`);
    }
    return;
  }
  const [fr, sr] = await rootsFromConsistencyProof(m, n, firstRoot, proof);
  if (!bytesEqual(fr, firstRoot)) {
    throw new TlogError("consistency", `consistency proof ${m} -> ${n} does not lead to the ` +
      "first root");
  }
  if (!bytesEqual(sr, secondRoot)) {
    throw new TlogError("consistency", `consistency proof ${m} -> ${n} does not lead to the ` +
      "second root");
  }
}

// ---------------------------------------------------------------- keys and notes (C2SP)

// Python's white space (str.isspace, and what str.strip() removes), exactly: JS's \s and
// trim() differ (they include U+FEFF and leave out U+001C-U+001F and U+0085), and a key or
// note the Python core accepts must be accepted here, and refused here when it refuses it.
// The list is Python 3.11's (every code point c with chr(c).isspace()).
const PY_SPACE = "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003" +
  "\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000";

/** True when `ch` (one character) is white space to Python's str.isspace. */
export function isPySpace(ch) {
  return ch.length === 1 && PY_SPACE.includes(ch);
}

/** `text` without leading and trailing white space as Python's str.strip() sees it. */
export function pyStrip(text) {
  let start = 0;
  let end = text.length;
  while (start < end && PY_SPACE.includes(text[start])) start++;
  while (end > start && PY_SPACE.includes(text[end - 1])) end--;
  return text.slice(start, end);
}

function checkName(name, what) {
  // As core/note.py: not empty, no '+', no character Python's isspace calls white space.
  if (!name || name.includes("+") || Array.from(name).some(isPySpace)) {
    throw new TlogError("format", `${what}: key name is empty or has '+' or spaces`);
  }
}

/** The 4-byte C2SP key id: SHA-256(name || 0x0A || 0x01 || publicKey)[:4]. */
export async function keyId(name, publicKey) {
  const digest = await sha256(concat(utf8(name), Uint8Array.of(0x0a, ALG_ED25519), publicKey));
  return digest.slice(0, 4);
}

/**
 * Parse a verifier key `name+hexid+base64(0x01 || pubkey)` (the base64 may hold '+').
 * Returns {name, keyId, publicKey, text}; throws (reason `format`) if malformed or if the id
 * does not match the key.
 */
export async function parseVkey(vkey) {
  if (typeof vkey !== "string" || vkey.length > 4096) {
    throw new TlogError("format", "verifier key: not a short text");
  }
  const text = pyStrip(vkey); // as Verifier.parse: vkey.strip()
  const first = text.indexOf("+");
  const second = first < 0 ? -1 : text.indexOf("+", first + 1);
  if (second < 0) throw new TlogError("format", "verifier key: want name+keyid+key");
  const name = text.slice(0, first);
  const hexid = text.slice(first + 1, second);
  checkName(name, "verifier key");
  if (hexid.length !== 8) {
    throw new TlogError("format", "verifier key: key id must be 8 hex digits");
  }
  const kid = unhex(hexid, "verifier key: key id");
  const raw = b64decode(text.slice(second + 1), "verifier key");
  if (raw.length !== 33 || raw[0] !== ALG_ED25519) {
    throw new TlogError("format",
      "verifier key: only Ed25519 (type 0x01, 32 bytes) is supported");
  }
  const publicKey = raw.slice(1);
  if (!bytesEqual(kid, await keyId(name, publicKey))) {
    throw new TlogError("format", "verifier key: key id does not match the key");
  }
  return { name, keyId: kid, publicKey, text };
}

/** The vkey text of a parsed key. */
export function formatVkey(key) {
  return `${key.name}+${hex(key.keyId)}+${b64encode(concat(Uint8Array.of(ALG_ED25519),
    key.publicKey))}`;
}

// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\x00-\x09\x0b-\x1f\x7f]/;

function checkText(text) {
  if (!text.endsWith("\n")) throw new TlogError("format", "note text must end with a newline");
  if (CONTROL_RE.test(text)) throw new TlogError("format", "note text has a control character");
}

/**
 * Split a signed note into its text and signature lines; throw (reason `format`) if
 * malformed. `note` is a string or the UTF-8 bytes (decoded strictly).
 * Returns {text, signatures: [{name, keyId, signature}]}.
 */
export function parseNote(note) {
  if (note instanceof Uint8Array) {
    if (note.length > MAX_NOTE_BYTES) throw new TlogError("format", "note is too large");
    try {
      note = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(note);
    } catch {
      throw new TlogError("format", "note is not valid UTF-8");
    }
  }
  if (typeof note !== "string") throw new TlogError("format", "note is not text");
  if (note.length > MAX_NOTE_BYTES) throw new TlogError("format", "note is too large");
  const cut = note.lastIndexOf("\n\n");
  if (cut < 0) throw new TlogError("format", "note has no blank line before its signatures");
  const text = note.slice(0, cut + 1);
  const sigblock = note.slice(cut + 2);
  checkText(text);
  if (!sigblock.endsWith("\n")) {
    throw new TlogError("format", "note signatures must end with a newline");
  }
  const lines = sigblock.slice(0, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) throw new TlogError("format", "note has too many signatures");
  const signatures = lines.map((line) => {
    if (!line.startsWith(SIG_PREFIX)) {
      throw new TlogError("format",
        "note signature line does not start with an em dash and a space");
    }
    const rest = line.slice(SIG_PREFIX.length);
    const space = rest.indexOf(" ");
    if (space < 0) throw new TlogError("format", "note signature line has no signature");
    const name = rest.slice(0, space);
    checkName(name, "note signature");
    const raw = b64decode(rest.slice(space + 1), "note signature");
    if (raw.length < 5) throw new TlogError("format", "note signature is too short");
    return { name, keyId: raw.slice(0, 4), signature: raw.slice(4) };
  });
  return { text, signatures };
}

async function ed25519Verify(publicKey, signature, message) {
  if (signature.length !== 64) return false;
  let key;
  try {
    key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false,
      ["verify"]);
  } catch (err) {
    // A browser without Ed25519 in WebCrypto cannot check anything: say so, never pass.
    if (err && err.name === "NotSupportedError") {
      throw new TlogError("signature", "this browser's WebCrypto has no Ed25519");
    }
    return false; // a key that is not a curve point verifies nothing (as the Python side)
  }
  try {
    return await crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
  } catch {
    return false;
  }
}

/**
 * Parse and verify a note against trusted keys (parsed vkeys): signatures by unknown keys are
 * ignored, a known key whose signature fails rejects the note (reason `signature`), and at
 * least one known key must verify. Returns the parsed note.
 */
export async function verifyNote(note, verifiers) {
  const parsed = parseNote(note);
  const message = utf8(parsed.text);
  let verified = false;
  for (const sig of parsed.signatures) {
    for (const v of verifiers) {
      if (v.name === sig.name && bytesEqual(v.keyId, sig.keyId)) {
        if (!(await ed25519Verify(v.publicKey, sig.signature, message))) {
          throw new TlogError("signature", `signature by ${sig.name} does not verify`);
        }
        verified = true;
      }
    }
  }
  if (!verified) throw new TlogError("signature", "no signature by a trusted key");
  return parsed;
}

// ---------------------------------------------------------------- checkpoints

/**
 * Parse a checkpoint body (the note text): origin, size (decimal, no leading zeros, < 2^64;
 * a BigInt), base64 root (32 bytes), extension lines. Throws (reason `format`).
 */
export function parseCheckpoint(text) {
  if (typeof text !== "string" || !text.endsWith("\n")) {
    throw new TlogError("format", "checkpoint must end with a newline");
  }
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw new TlogError("format", "checkpoint needs origin, size and root lines");
  const [origin, sizeText, rootText, ...extensions] = lines;
  if (!origin) throw new TlogError("format", "checkpoint origin must be one non-empty line");
  if (!/^(?:0|[1-9][0-9]{0,19})$/.test(sizeText)) {
    throw new TlogError("format", "checkpoint size is not a decimal number without leading zeros");
  }
  const size = BigInt(sizeText);
  if (size > MAX_U64) throw new TlogError("format", "checkpoint size does not fit in 64 bits");
  const root = b64decode(rootText, "checkpoint root");
  if (root.length !== HASH_SIZE) {
    throw new TlogError("format", `checkpoint root must be ${HASH_SIZE} bytes`);
  }
  for (const ext of extensions) {
    if (!ext) throw new TlogError("format", "checkpoint extension lines must be non-empty");
  }
  return { origin, size, root, extensions };
}

/**
 * Verify a signed checkpoint note with a trusted key (a parsed vkey) and return the parsed
 * checkpoint plus the note text; its origin must equal the key name (or `origin` if given).
 */
export async function openCheckpoint(note, verifier, origin = null) {
  const parsed = await verifyNote(note, [verifier]);
  const cp = parseCheckpoint(parsed.text);
  const want = origin ?? verifier.name;
  if (cp.origin !== want) {
    throw new TlogError("format", `checkpoint origin ${JSON.stringify(cp.origin)} is not the ` +
      `expected ${JSON.stringify(want)}`);
  }
  return cp;
}

// ---------------------------------------------------------------- proof documents (JSON)

// Integers in proof documents are typed as Python's json.loads types them: `3` is an int,
// `3.0` and `3e0` are floats (which core/proofs.py refuses), though JS's JSON.parse makes all
// three the number 3. A document given as text is parsed keeping each number's source: an
// integer literal becomes a BigInt (exact at any size, as Python's int), any other number
// stays a Number and is refused where an integer is wanted.
const JSON_INT_RE = /^-?(?:0|[1-9][0-9]*)$/;

/** Does the JSON text hold a number literal with a fraction or an exponent (outside strings)? */
function hasNonIntegerLiteral(text) {
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === "\\") i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') {
      inString = true;
    } else if (ch === "." || ch === "e" || ch === "E") {
      // Outside strings these only occur in numbers (true/false/null hold an "e", but
      // never after a digit): a digit before means a number literal with a fraction/exponent.
      if (/[0-9]/.test(text[i - 1] ?? "")) return true;
    }
  }
  return false;
}

/**
 * Parse JSON text with integers as Python sees them: integer literals as BigInt, every other
 * number as a Number (a float). Browsers without JSON.parse's source text (the reviver's
 * third argument) get a stricter fallback: a text holding any non-integer number literal is
 * refused, and integers are Numbers (exact up to 2^53).
 */
export function parseJsonExact(text) {
  let exact = true;
  const doc = JSON.parse(text, function revive(key, value, context) {
    if (typeof value !== "number") return value;
    if (!context || typeof context.source !== "string") {
      exact = false;
      return value;
    }
    return JSON_INT_RE.test(context.source) ? BigInt(context.source) : value;
  });
  if (!exact && hasNonIntegerLiteral(text)) {
    throw new SyntaxError("a number with a fraction or an exponent (this browser cannot " +
      "tell it from an integer)");
  }
  return { doc, exact };
}

function docInt(doc, key, exact) {
  const v = doc[key];
  // From text (`exact`): only integer literals (BigInt). A document built in JS has no
  // literal form: a safe integer Number is taken as the integer it is.
  const ok = typeof v === "bigint" ? v >= 0n
    : !exact && typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
  if (!ok) throw new TlogError("format", `proof field '${key}' must be a non-negative integer`);
  return BigInt(v);
}

function docHash(doc, key) {
  if (typeof doc[key] !== "string") {
    throw new TlogError("format", `proof field '${key}' must be a base64 string`);
  }
  return b64decode(doc[key], key);
}

function docHashes(doc, key) {
  const v = doc[key];
  if (!Array.isArray(v) || v.length > MAX_PROOF_HASHES) {
    throw new TlogError("format", `proof field '${key}' must be a list of at most ` +
      `${MAX_PROOF_HASHES} hashes`);
  }
  return v.map((item, i) => {
    if (typeof item !== "string") {
      throw new TlogError("format", `proof field ${key}[${i}] must be a base64 string`);
    }
    return b64decode(item, `${key}[${i}]`);
  });
}

function asObject(doc) {
  let exact = false;
  if (typeof doc === "string") {
    try {
      ({ doc, exact } = parseJsonExact(doc));
    } catch (err) {
      throw new TlogError("format", `proof is not JSON: ${err.message}`);
    }
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    throw new TlogError("format", "proof must be a JSON object");
  }
  return { doc, exact };
}

/**
 * Parse an inclusion proof document: leaf_index, tree_size, hashes. Pass the JSON text as
 * received (an object already parsed by JSON.parse has lost whether `3.0` was `3`).
 */
export function parseInclusionProof(input) {
  const { doc, exact } = asObject(input);
  return {
    leafIndex: docInt(doc, "leaf_index", exact),
    treeSize: docInt(doc, "tree_size", exact),
    leafHash: docHash(doc, "leaf_hash"),
    auditPath: docHashes(doc, "audit_path"),
  };
}

/** Parse a consistency proof document: first, second, consistency (the roots are ignored:
 * a verifier compares with roots it holds from signed checkpoints). */
export function parseConsistencyProof(input) {
  const { doc, exact } = asObject(input);
  return {
    first: docInt(doc, "first", exact),
    second: docInt(doc, "second", exact),
    consistency: docHashes(doc, "consistency"),
  };
}

// ---------------------------------------------------------------- entries (JSON Lines)

/**
 * The objects of a JSON Lines text. Split on "\n" only: a JSON string may hold U+2028 or
 * U+2029, which other line splitters cut on. Throws (reason `format`) on a bad line.
 */
export function parseJsonLines(text) {
  const lines = text.split("\n");
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  return lines.map((line, i) => {
    try {
      return JSON.parse(line);
    } catch (err) {
      throw new TlogError("format", `line ${i + 1} is not JSON: ${err.message}`);
    }
  });
}

// ---------------------------------------------------------------- witnesses (C2SP cosignature/v1)

// As core/cosignature.py and core/witness_policy.py. A witness's cosignature is a note
// signature line by a key of type 0x04: key id SHA-256(name || 0x0A || 0x04 || key)[:4], the
// signature `time (u64, big-endian) || Ed25519 signature` over
// "cosignature/v1\ntime <decimal>\n" followed by the checkpoint body.

const ALG_COSIGNATURE_V1 = 0x04;
const MAX_TIMESTAMP = (1n << 63n) - 1n;
export const MAX_WITNESSES = 32;
// Python's str.isprintable(): no character of the categories Other (Cc, Cf, Cs, Co, Cn) or
// Separator (Zs, Zl, Zp) but the ASCII space, which a cosigner name forbids anyway.
const PRINTABLE_NAME_RE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]+$/u;

function checkCosignerName(name) {
  if (!name || /[ +\n]/.test(name) || !PRINTABLE_NAME_RE.test(name)) {
    throw new TlogError("format", `cosigner name ${JSON.stringify(name)}: non-empty, ` +
      "printable, no space or '+'");
  }
}

/** The 4-byte key id of an Ed25519 cosigner key: SHA-256(name || 0x0A || 0x04 || key)[:4]. */
export async function cosignerKeyId(name, publicKey) {
  const digest = await sha256(concat(utf8(name), Uint8Array.of(0x0a, ALG_COSIGNATURE_V1),
    publicKey));
  return digest.slice(0, 4);
}

/**
 * Parse a witness's cosigner key `name+hexid+base64(0x04 || pubkey)`. Returns
 * {name, keyId, publicKey, text}; throws (reason `format`) naming what is wrong.
 */
export async function parseCosignerVkey(vkey) {
  if (typeof vkey !== "string" || vkey.length > 4096) {
    throw new TlogError("format", "cosigner key: not a short text");
  }
  const text = pyStrip(vkey);
  const first = text.indexOf("+");
  const second = first < 0 ? -1 : text.indexOf("+", first + 1);
  if (second < 0) throw new TlogError("format", "cosigner key: want name+keyid+key");
  const name = text.slice(0, first);
  const hexid = text.slice(first + 1, second);
  checkCosignerName(name);
  if (hexid.length !== 8) throw new TlogError("format", "cosigner key: key id must be 8 hex digits");
  const kid = unhex(hexid, "cosigner key: key id");
  const raw = b64decode(text.slice(second + 1), "cosigner key");
  if (raw.length !== 33 || raw[0] !== ALG_COSIGNATURE_V1) {
    throw new TlogError("format", "cosigner key: want type 0x04 (cosignature/v1, Ed25519) " +
      "and a 32-byte key");
  }
  const publicKey = raw.slice(1);
  if (!bytesEqual(kid, await cosignerKeyId(name, publicKey))) {
    throw new TlogError("format", "cosigner key: key id does not match the key");
  }
  return { name, keyId: kid, publicKey, text };
}

/** The vkey text of a parsed cosigner key. */
export function formatCosignerVkey(key) {
  return `${key.name}+${hex(key.keyId)}+${b64encode(concat(Uint8Array.of(ALG_COSIGNATURE_V1),
    key.publicKey))}`;
}

/** What a cosignature signs: the header, the time line, the checkpoint body. */
export function cosignedMessage(body, time) {
  return utf8(`cosignature/v1\ntime ${BigInt(time).toString()}\n${body}`);
}

/**
 * The time (a Number of POSIX seconds; a BigInt past 2^53) of a valid cosignature
 * (`time || Ed25519 signature`, 72 bytes) of the checkpoint `body` by `key`; throws
 * (reason `cosignature`) when it does not verify.
 */
export async function verifyCosignature(key, body, signature) {
  if (!(signature instanceof Uint8Array) || signature.length !== 72) {
    throw new TlogError("cosignature", `cosignature by ${key.name}: want 72 bytes, got ` +
      `${signature?.length}`);
  }
  const time = new DataView(signature.buffer, signature.byteOffset, 8).getBigUint64(0);
  if (time > MAX_TIMESTAMP) {
    throw new TlogError("cosignature", `cosignature by ${key.name}: time past 2^63-1`);
  }
  let ok;
  try {
    ok = await ed25519Verify(key.publicKey, signature.slice(8), cosignedMessage(body, time));
  } catch (err) {
    throw new TlogError("cosignature", err.message); // (no Ed25519 in this browser)
  }
  if (!ok) throw new TlogError("cosignature", `cosignature by ${key.name} does not verify`);
  return time <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(time) : time;
}

/** Python's str.split() (no argument): the words between runs of Python white space. */
function pySplit(text) {
  const words = [];
  let word = "";
  for (const ch of text) {
    if (isPySpace(ch)) {
      if (word) words.push(word);
      word = "";
    } else word += ch;
  }
  if (word) words.push(word);
  return words;
}

const DIGIT_RE = /^\p{Nd}$/u;

/**
 * The value of a string of Unicode decimal digits, as Python's int() reads it (`quorum ٢` is
 * 2 there too). Each script's digits are encoded as runs of ten, 0 to 9, and adjacent runs
 * (the mathematical digits) are whole runs: a digit's value is its distance from the start of
 * its contiguous span of digits, modulo 10.
 */
function decimalValue(text) {
  let value = 0;
  for (const ch of text) {
    let start = ch.codePointAt(0);
    while (DIGIT_RE.test(String.fromCodePoint(start - 1))) start--;
    value = value * 10 + ((ch.codePointAt(0) - start) % 10);
  }
  return value;
}

/**
 * Parse a witness policy's text (what `sealtrail witnesses list --policy` prints):
 * `witness <cosigner vkey> [<url>]` and `quorum <k>` lines, `#` starting a comment; the quorum
 * defaults to every witness listed. Returns {witnesses: [{key, url, name}], quorum, text};
 * throws (reason `format`) naming the line, as core/witness_policy.py does.
 */
export async function parseWitnessPolicy(text) {
  if (typeof text !== "string" || text.length > 65536) {
    throw new TlogError("format", "witness policy: not a short text");
  }
  const witnesses = [];
  let quorum = null;
  const lines = text.split("\n");
  for (let n = 0; n < lines.length; n++) {
    const line = pyStrip(lines[n].split("#", 1)[0]);
    if (!line) continue;
    const words = pySplit(line);
    const where = `line ${n + 1}`;
    if (words[0] === "witness" && (words.length === 2 || words.length === 3)) {
      let key;
      try {
        key = await parseCosignerVkey(words[1]);
      } catch (err) {
        throw new TlogError("format", `${where}: ${err.message}`);
      }
      const url = words.length === 3 ? words[2] : "";
      if (url && !url.startsWith("http://") && !url.startsWith("https://")) {
        throw new TlogError("format", `${where}: a witness URL starts with http:// or https://`);
      }
      witnesses.push({ key, url, name: key.name });
    } else if (words[0] === "quorum" && words.length === 2) {
      if (!/^[0-9]{1,3}$/.test(words[1])) {
        throw new TlogError("format", `${where}: quorum takes a whole number`);
      }
      quorum = decimalValue(words[1]);
    } else {
      throw new TlogError("format", `${where}: want 'witness <vkey> [<url>]' or 'quorum <k>'`);
    }
  }
  const names = witnesses.map((w) => w.name);
  if (new Set(names).size !== names.length) {
    throw new TlogError("format", "witness: two witnesses share a name");
  }
  // The cosigned message does not name the witness: one key under two names would let one
  // signature count twice toward the quorum.
  const keys = witnesses.map((w) => hex(w.key.publicKey));
  if (new Set(keys).size !== keys.length) {
    throw new TlogError("format", "witness: two witnesses share a key: one signer would " +
      "count twice toward the quorum");
  }
  if (names.length > MAX_WITNESSES) {
    throw new TlogError("format", `witness: at most ${MAX_WITNESSES} witnesses`);
  }
  quorum = quorum ?? names.length;
  if (!names.length || quorum < 1 || quorum > Math.max(1, names.length)) {
    throw new TlogError("format", `quorum: the quorum must be 1..${names.length} (the number ` +
      "of witnesses), and a policy names at least one witness");
  }
  return { witnesses, quorum, text };
}

/** A parsed policy as text (parses back to an equal policy), as WitnessPolicy.format. */
export function formatWitnessPolicy(policy) {
  const lines = policy.witnesses.map((w) => `witness ${formatCosignerVkey(w.key)}` +
    (w.url ? ` ${w.url}` : ""));
  return [...lines, `quorum ${policy.quorum}`].join("\n") + "\n";
}

/**
 * Which of the policy's witnesses cosigned the checkpoint `note` (text or UTF-8 bytes).
 * Lines of other keys (the log's own, unknown witnesses) are ignored; a line naming a policy
 * key that does not verify throws (reason `cosignature`: the note was tampered with). Does not
 * check the log's own signature (openCheckpoint does). Returns
 * {met, cosigned: {name: time}, missing: [names], quorum}.
 */
export async function checkWitnessed(note, policy) {
  const parsed = parseNote(note);
  const found = new Map(); // (a Map: a witness may be named "__proto__")
  for (const sig of parsed.signatures) {
    for (const w of policy.witnesses) {
      if (w.key.name === sig.name && bytesEqual(w.key.keyId, sig.keyId)) {
        found.set(w.name, await verifyCosignature(w.key, parsed.text, sig.signature));
      }
    }
  }
  const missing = policy.witnesses.map((w) => w.name).filter((name) => !found.has(name));
  return { met: found.size >= policy.quorum, cosigned: Object.fromEntries(found), missing,
    quorum: policy.quorum };
}
