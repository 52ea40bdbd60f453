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
//
// Beside the key the user may pin a witness policy (the text `sealtrail witnesses list
// --policy` prints): the witnesses they trust and how many must have cosigned a checkpoint.
// Only a policy the user pasted is ever pinned, never the server's own list (a server could
// name witnesses it runs itself). It is kept like the key, per (site origin, log), and is
// cleared on its own ("Forget pin" leaves it: it does not depend on the log's key).

import { TlogError, b64encode, bytesEqual, hex, openCheckpoint, parseConsistencyProof,
  parseVkey, parseWitnessPolicy, pyStrip, sha256, utf8, verifyConsistency } from "./tlog.js";

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

/** The pinned witness policy of `log`: {text, pinnedAt} or null. */
export function loadPolicy(log, origin) {
  const pinned = read(slot("policy", log, origin));
  return pinned && typeof pinned.text === "string" ? pinned : null;
}

/**
 * Pin the witness policy the user pasted, after parsing it (TlogError, reason `format`,
 * naming the line, for a malformed one: nothing is stored then). Returns {pinned, policy}.
 */
export async function pinPolicy(log, text, now = new Date(), origin) {
  const policy = await parseWitnessPolicy(text);
  const pinned = { text, pinnedAt: now.toISOString() };
  storage().setItem(slot("policy", log, origin), JSON.stringify(pinned));
  return { pinned, policy };
}

/** Forget the pinned witness policy of `log`. */
export function forgetPolicy(log, origin) {
  storage().removeItem(slot("policy", log, origin));
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
  // Under the memory lock: a check running in another tab must not store a checkpoint
  // between this read and the removal.
  const keptMemory = await withMemoryLock(log, async () => {
    const memo = loadCheckpoint(log, origin);
    if (!memo) return false;
    try {
      await openCheckpoint(memo.note, key);
      return true;
    } catch {
      storage().removeItem(slot("checkpoint", log, origin));
      return false;
    }
  }, origin);
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
 * (its JSON text, or an object). Returns {kind: "first"|"same"|"extends", previous,
 * proofLength}; throws TlogError with reason `rollback`, `fork` or `consistency`. Pure: it
 * stores nothing (rememberCheckpoint is the step that updates the memory).
 */
export async function checkAgainstMemory(memo, cp, key, fetchConsistency) {
  const old = await openMemo(memo, key);
  if (!old) return { kind: "first", previous: null, proofLength: 0 };
  if (cp.size < old.size) {
    throw new TlogError("rollback", `the server's checkpoint (size ${cp.size}) is older than ` +
      `one this browser verified before (size ${old.size}): the log was rolled back`);
  }
  return holdAgainst(old, cp, fetchConsistency);
}

/** The remembered checkpoint re-verified with `key`, or null (none, or it does not verify). */
async function openMemo(memo, key) {
  if (!memo) return null;
  try {
    // A stored note that no longer verifies (edited storage, another key) is no evidence
    // either way, and is treated as absent.
    return await openCheckpoint(memo.note, key);
  } catch {
    return null;
  }
}

/**
 * `cp` against an older-or-equal verified checkpoint `old` (old.size <= cp.size): the same
 * tree (equal size and root), or a proven extension; else fork or consistency.
 */
async function holdAgainst(old, cp, fetchConsistency) {
  if (cp.size === old.size) {
    if (!bytesEqual(cp.root, old.root)) {
      throw new TlogError("fork", `the server signed two different trees of size ${cp.size}: ` +
        "the log was forked or rewritten");
    }
    return { kind: "same", previous: old, proofLength: 0 };
  }
  const proofLength = await proveExtends(old, cp, fetchConsistency);
  return { kind: "extends", previous: old, proofLength };
}

/** Verify that tree `cp` extends tree `old` (old.size < cp.size); the proof's length. */
async function proveExtends(old, cp, fetchConsistency) {
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
  return proof.consistency.length;
}

/** The Web Locks name that serializes the checkpoint memory of (origin, log) across tabs. */
export function memoryLockName(log, origin) {
  return `sealtrail-checkpoint ${origin ?? globalThis.location.origin} ${log}`;
}

/**
 * Run `fn` holding this origin's lock on the checkpoint memory of `log`, so that two tabs
 * never interleave reading, checking and storing it. Web Locks exist in secure contexts
 * (HTTPS, loopback), which the console's Secure session cookie requires anyway; without
 * them `fn` runs unguarded (the memory is still re-read just before it is used).
 */
export function withMemoryLock(log, fn, origin) {
  const locks = globalThis.navigator?.locks;
  if (!locks || typeof locks.request !== "function") return fn();
  return locks.request(memoryLockName(log, origin), { mode: "exclusive" }, () => fn());
}

/**
 * The checkpoint-memory step of a check: hold the page's verified checkpoint `cp` (note text
 * `note`) against the memory, and update the memory, under the memory lock.
 *
 * Inside the lock the memory is read again (another tab may have stored a newer checkpoint
 * since this page fetched its own), and it is only ever replaced by a LARGER checkpoint
 * verified with the pinned `key` and proven consistent with what is stored at that moment.
 * When the stored checkpoint is newer than the page's, that is not yet a rollback: the latest
 * checkpoint is fetched again (`fetchCheckpoint()` -> note text) and must be at least as new
 * as the memory (else rollback), consistent with it (else fork or consistency), and an
 * extension of the page's checkpoint (else consistency).
 *
 * `fetchConsistency(first, second)` -> the consistency proof (JSON text). Returns
 * {kind: "first"|"same"|"extends"|"behind", previous, proofLength, latest, saved}: `previous`
 * the remembered checkpoint held against, `latest` (kind "behind") the re-fetched one,
 * `saved` the checkpoint now remembered (null when the memory is unchanged).
 */
export function rememberCheckpoint(log, note, cp, key, { fetchConsistency, fetchCheckpoint },
  now = new Date(), origin) {
  return withMemoryLock(log, async () => {
    const memo = loadCheckpoint(log, origin);
    const old = await openMemo(memo, key);
    if (!old) {
      saveCheckpoint(log, note, cp, now, origin);
      return { kind: "first", previous: null, proofLength: 0, latest: null, saved: cp };
    }
    if (cp.size >= old.size) {
      const held = await holdAgainst(old, cp, fetchConsistency);
      // Larger and proven to extend what is stored now: the only way the memory changes.
      const saved = held.kind === "extends" ? cp : null;
      if (saved) saveCheckpoint(log, note, cp, now, origin);
      return { ...held, latest: null, saved };
    }
    // The memory is newer than this page's checkpoint (another tab, or this one before,
    // verified a larger tree since). Ask the server for its latest checkpoint again.
    let latestNote;
    try {
      latestNote = await fetchCheckpoint();
    } catch (err) {
      throw new TlogError("fetch", `this page's checkpoint (size ${cp.size}) is older than ` +
        `the remembered one (size ${old.size}) and the latest could not be fetched again: ` +
        err.message);
    }
    const latest = await openCheckpoint(latestNote, key);
    if (latest.size < old.size) {
      throw new TlogError("rollback", `the server's checkpoint (size ${latest.size}, fetched ` +
        `again) is older than one this browser verified before (size ${old.size}): the log ` +
        "was rolled back");
    }
    const held = await holdAgainst(old, latest, fetchConsistency);
    // The page's own tree must be a prefix of the latest (and so of the remembered one).
    const proofLength = await proveExtends(cp, latest, fetchConsistency);
    const saved = held.kind === "extends" ? latest : null;
    if (saved) saveCheckpoint(log, latestNote, latest, now, origin);
    return { kind: "behind", previous: old, proofLength, latest, saved };
  });
}
