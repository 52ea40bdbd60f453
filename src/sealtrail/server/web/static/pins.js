// What this browser trusts about each log, kept in localStorage per (site origin, log):
// the pinned verifier key, and the newest checkpoint it verified (checkpoint memory).
//
// Trust on first use: the first visit pins the key the server presents; from then on every
// checkpoint must be signed by the pinned key, and a different key is reported, never
// adopted. The user can pin a key they got elsewhere (the operator's published `sealtrail
// vkey`) or forget the pin. Checkpoint memory makes a server that rolls its log back or shows
// two different trees (a fork) visible: each newer checkpoint must be proven consistent with
// the remembered one (RFC 9162 §2.1.4), an older one is a rollback, an equal size with
// another root a fork.

import { TlogError, b64encode, bytesEqual, hex, openCheckpoint, parseConsistencyProof,
  parseVkey, pyStrip, sha256, utf8, verifyConsistency } from "./tlog.js";

const PREFIX = "sealtrail/v1";

function storage() {
  return globalThis.localStorage;
}

function slot(kind, log, origin) {
  return `${PREFIX} ${kind} ${origin ?? globalThis.location.origin} ${log}`;
}

function read(key) {
  const text = storage().getItem(key);
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** The pinned key of `log`: {vkey, source: "first-use"|"pasted", pinnedAt} or null. */
export function loadPin(log, origin) {
  const pin = read(slot("pin", log, origin));
  return pin && typeof pin.vkey === "string" ? pin : null;
}

/** Pin `vkey` (text, already parsed by the caller) for `log`. */
export function savePin(log, vkey, source, now = new Date(), origin) {
  const pin = { vkey: pyStrip(vkey), source, pinnedAt: now.toISOString() };
  storage().setItem(slot("pin", log, origin), JSON.stringify(pin));
  return pin;
}

/** The remembered checkpoint of `log`: {note, size (decimal text), root (base64), seenAt}. */
export function loadCheckpoint(log, origin) {
  const cp = read(slot("checkpoint", log, origin));
  return cp && typeof cp.note === "string" ? cp : null;
}

/** Remember a verified checkpoint (`cp` from tlog.openCheckpoint, `note` its text). */
export function saveCheckpoint(log, note, cp, now = new Date(), origin) {
  const memo = { note, size: cp.size.toString(), root: b64encode(cp.root),
    seenAt: now.toISOString() };
  storage().setItem(slot("checkpoint", log, origin), JSON.stringify(memo));
  return memo;
}

/** Forget the pin and the checkpoint memory of `log` (the next visit pins again). */
export function forget(log, origin) {
  storage().removeItem(slot("pin", log, origin));
  storage().removeItem(slot("checkpoint", log, origin));
}

/**
 * Pin a key the user pasted. The checkpoint memory is kept only if its note verifies with the
 * new key (it was verified with the old one); returns {pin, keptMemory}. Throws TlogError
 * (reason `format`) for a malformed key.
 */
export async function pinPasted(log, text, now = new Date(), origin) {
  const key = await parseVkey(text);
  const pin = savePin(log, key.text, "pasted", now, origin);
  const memo = loadCheckpoint(log, origin);
  let keptMemory = false;
  if (memo) {
    try {
      await openCheckpoint(memo.note, key);
      keptMemory = true;
    } catch {
      storage().removeItem(slot("checkpoint", log, origin));
    }
  }
  return { pin, keptMemory };
}

/** What to show of a key: its name, key id (hex) and the SHA-256 of the vkey text (hex). */
export async function fingerprint(vkeyText) {
  const key = await parseVkey(vkeyText);
  return { name: key.name, keyId: hex(key.keyId), sha256: hex(await sha256(utf8(key.text))),
    text: key.text };
}

/**
 * Hold a newly verified checkpoint `cp` against the remembered one (`memo`, or null), with
 * `key` the pinned key. `fetchConsistency(first, second)` returns the API's consistency proof
 * JSON. Returns {kind: "first"|"same"|"extends", previous, proofLength}; throws TlogError
 * with reason `rollback`, `fork` or `consistency`.
 */
export async function checkAgainstMemory(memo, cp, key, fetchConsistency) {
  if (!memo) return { kind: "first", previous: null, proofLength: 0 };
  let old;
  try {
    // The memory is re-verified: a stored note that no longer verifies (edited storage,
    // another key) is no evidence either way, and is treated as absent.
    old = await openCheckpoint(memo.note, key);
  } catch {
    return { kind: "first", previous: null, proofLength: 0 };
  }
  if (cp.size === old.size) {
    if (!bytesEqual(cp.root, old.root)) {
      throw new TlogError("fork", `the server signed two different trees of size ${cp.size}: ` +
        "the log was forked or rewritten");
    }
    return { kind: "same", previous: old, proofLength: 0 };
  }
  if (cp.size < old.size) {
    throw new TlogError("rollback", `the server's checkpoint (size ${cp.size}) is older than ` +
      `one this browser verified before (size ${old.size}): the log was rolled back`);
  }
  let doc;
  try {
    doc = await fetchConsistency(old.size, cp.size);
  } catch (err) {
    throw new TlogError("consistency", `no consistency proof from size ${old.size} to ` +
      `${cp.size}: ${err.message}`);
  }
  let proof;
  try {
    proof = parseConsistencyProof(doc);
  } catch (err) {
    throw new TlogError("consistency", `the consistency proof is malformed: ${err.message}`);
  }
  if (proof.first !== old.size || proof.second !== cp.size) {
    throw new TlogError("consistency", "the consistency proof is for other sizes");
  }
  // Against the two roots this browser verified itself, never the proof's own roots.
  await verifyConsistency(old.size, cp.size, old.root, cp.root, proof.consistency);
  return { kind: "extends", previous: old, proofLength: proof.consistency.length };
}
