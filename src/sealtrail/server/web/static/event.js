// The event page: one entry, its inclusion proof checked here, in the browser, against the
// key this browser pinned, and its fields decoded from the leaf that was checked.
//
// Steps (numbered as in the code):
//  1. the pinned key (pinned now from GET /vkey on first use; otherwise never re-fetched);
//  2. the entry (GET /entries, JSON Lines) -> the exact leaf bytes;
//  3. the signed checkpoint (GET /checkpoint) verified with the PINNED key -> size, root;
//  4. the inclusion proof at that size (GET /proof/inclusion): our own leaf hash must equal
//     the proof's, and the audit path must lead to the checkpoint's root (the proof's own
//     root_hash and checkpoint are not used);
//  5. checkpoint memory, under a Web Lock shared by this browser's tabs (pins.js
//     rememberCheckpoint): the newest checkpoint this browser verified must be the same tree
//     or be proven a prefix of this one (GET /proof/consistency); if it is newer than this
//     page's, the latest checkpoint is fetched again and must extend both, else rollback or
//     fork. The memory is only ever replaced by a larger, proven-consistent checkpoint;
//  6. the fields, decoded from the verified leaf; sealed fields shown as sealed, with the
//     value the server opened (if it did, for this role) labelled as such, never as verified.
// data-proof-status on #proof-status is "checking", then "verified" or "failed" (with
// data-proof-reason: fetch, format, key-changed, signature, leaf-hash, inclusion, rollback,
// fork, consistency, retired; error for anything unexpected).
//
// Witnessed (when the user pinned a witness policy; pins.js): the entry's inclusion in the
// latest checkpoint the log's witnesses cosigned (GET /proof/inclusion?witnessed=true, which
// carries that checkpoint with its cosignature lines), checked here too:
//  W0. GET /witnessing says how far the log's witnesses cosigned: an entry past that size is
//      "not witnessed yet" (the server's word, but it can only make the page say less);
//  W1. the carried checkpoint is signed by the PINNED log key;
//  W2. the inclusion proof leads from our own leaf hash to its root;
//  W3. it is the same tree as, or proven consistent with, the checkpoint verified above
//      (GET /proof/consistency), so the witnesses saw the history this page shows;
//  W4. its cosignature lines verify against the PINNED policy's keys (tlog.checkWitnessed);
//      the policy's quorum of them makes it witnessed.
// data-witness-status on #witness-status: "none" (no policy pinned), "checking", then
// "witnessed", "not-witnessed" (data-witness-reason: pending = no witnessed checkpoint covers
// the entry yet; quorum = too few of the policy's witnesses cosigned) or "failed"
// (data-witness-reason: policy, entry, fetch, format, signature, inclusion, leaf-hash,
// consistency, cosignature, error). The server's own list of witnesses is never used to decide.

import { ApiError, api, apiText, clear, currentLog, el, logPath, qs } from "./api.js";
import { fingerprint, forget, forgetPolicy, loadCheckpoint, loadPin, loadPolicy, pinPasted,
  pinPolicy, rememberCheckpoint, savePin } from "./pins.js";
import { TlogError, b64decode, b64encode, bytesEqual, checkWitnessed, hex, leafHash,
  openCheckpoint, parseConsistencyProof, parseJsonExact, parseJsonLines, parseInclusionProof,
  parseNote, parseVkey, parseWitnessPolicy, pyStrip, verifyConsistency,
  verifyInclusion } from "./tlog.js";

const log = currentLog();
const index = document.body.dataset.index || "";

// ---------------------------------------------------------------- fetching

async function fetchText(rest, query) {
  try {
    return await apiText(logPath(rest), { query });
  } catch (err) {
    throw new TlogError("fetch", `GET ${rest}: ${err.message}`);
  }
}

// ---------------------------------------------------------------- rendering helpers

function fact(list, term, ...desc) {
  list.append(el("dt", {}, term), el("dd", {}, ...desc));
}

function setStatus(status, reason, text) {
  const node = qs("#proof-status");
  node.dataset.proofStatus = status;
  if (reason) node.dataset.proofReason = reason;
  else delete node.dataset.proofReason;
  node.className = `proof-status ${status}`;
  clear(node).append(
    el("span", { class: `badge ${status}` }, status === "verified" ? "Verified"
      : status === "failed" ? "Failed" : "Checking"), " ", text);
}

function valueNode(value) {
  if (value === null || typeof value !== "object") {
    return el("span", { class: typeof value === "string" ? "" : "mono" },
      typeof value === "string" ? value : JSON.stringify(value));
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return el("span", { class: "mono" }, "[]");
    return el("ol", { class: "values" }, value.map((v) => el("li", {}, valueNode(v))));
  }
  const dl = el("dl", { class: "facts nested" });
  for (const [k, v] of Object.entries(value)) fact(dl, k, valueNode(v));
  return dl;
}

function atPath(obj, path) {
  let node = obj;
  for (const part of path.split(".")) {
    if (node === null || typeof node !== "object" || !Object.hasOwn(node, part)) {
      return { found: false };
    }
    node = node[part];
  }
  return { found: true, value: node };
}

// The raw leaf is shown as soon as it arrives, before (and whatever) the check says: its
// section says whether the check verified it, and is greyed out ("not verified") otherwise.
const LEAF_STATES = {
  checking: ["warn", "not verified yet", "Shown as the server sent it: not verified yet."],
  verified: ["verified", "verified", "Verified: these bytes hash to the leaf whose " +
    "inclusion in the signed tree was proven above."],
  failed: ["failed", "not verified", "Not verified: shown as the server sent it. The check " +
    "above failed, so nothing shows these bytes are in the log."],
};

function setLeafState(state) {
  const [badgeClass, badgeText, note] = LEAF_STATES[state];
  qs("#raw-leaf-section").dataset.leafState = state;
  const badge = qs("#raw-leaf-badge");
  badge.className = `badge ${badgeClass}`;
  badge.textContent = badgeText;
  qs("#raw-leaf-state").textContent = note;
  qs("#raw-leaf").classList.toggle("muted", state !== "verified");
}

// ---------------------------------------------------------------- the key pin section

async function showPin(pin, note) {
  const info = clear(qs("#pin-info"));
  if (!pin) {
    fact(info, "Pinned key", "none: the next check pins the key the server presents");
    return;
  }
  try {
    const fp = await fingerprint(pin.vkey);
    fact(info, "Key name", fp.name);
    fact(info, "Key id", el("code", {}, fp.keyId));
    fact(info, "Fingerprint (SHA-256 of the key text)", el("code", { id: "pin-fingerprint" },
      fp.sha256));
    fact(info, "Verifier key", el("code", { id: "pinned-vkey" }, fp.text));
    fact(info, "Pinned", pin.source === "pasted" ? `pasted by you, ${pin.pinnedAt}`
      : `on first use (the server's answer, unverified then), ${pin.pinnedAt}`);
  } catch (err) {
    fact(info, "Pinned key", `unreadable (${err.message}): forget it and pin again`);
  }
  const memo = loadCheckpoint(log);
  fact(info, "Checkpoint memory", memo ? `size ${memo.size}, root ${memo.root}, seen ${memo.seenAt}`
    : "none yet");
  if (note) fact(info, "Note", note);
}

// ---------------------------------------------------------------- the check

function reasonOf(err) {
  // Requests are wrapped as TlogError("fetch") by fetchText; anything else is unexpected.
  return err instanceof TlogError ? err.reason : "error";
}

/** Which key signed the note, when not the pinned one (for the key-changed warning). */
function otherSigners(noteText, key) {
  try {
    return parseNote(noteText).signatures
      .filter((s) => !(s.name === key.name && bytesEqual(s.keyId, key.keyId)))
      .map((s) => `${s.name} ${hex(s.keyId)}`);
  } catch {
    return [];
  }
}

async function keyChangedWarning(key, signers) {
  let presented = "";
  try {
    // Shown for comparison only: never pinned in place of the user's key.
    presented = pyStrip(await fetchText("/vkey"));
  } catch { /* the warning stands without it */ }
  // At the top of the page, beside the status: the first thing anyone sees.
  const box = clear(qs("#proof-alert"));
  box.append(el("div", { class: "alert-box loud", role: "alert", id: "key-changed" },
    el("p", {}, el("strong", {}, "Warning: the log's signing key has changed.")),
    el("p", {}, `This browser pinned key ${key.name} ${hex(key.keyId)}, but the server's ` +
      `checkpoint is signed by ${signers.length ? signers.join(", ") : "another key"}. ` +
      "Nothing the server sends is accepted until you decide."),
    presented ? el("p", {}, "The server now presents: ", el("code", {}, presented)) : null,
    el("p", {}, "If your operator announced a new key, check its fingerprint with them and " +
      "paste it under “Pinned key” below. Otherwise treat this server as compromised."),
    el("p", {}, el("a", { href: "#trusted-vkey" }, "Go to the pinned key"))));
}

function busy(on) {
  for (const id of ["#pin-submit", "#pin-forget", "#policy-submit", "#policy-forget"]) {
    qs(id).disabled = on;
  }
}

async function check() {
  busy(true);
  try {
    await runCheck();
  } finally {
    busy(false);
  }
}

async function runCheck() {
  const checked = clear(qs("#proof-checked"));
  clear(qs("#proof-alert"));
  clear(qs("#pin-alert"));
  clear(qs("#fields"));
  clear(qs("#raw-leaf"));
  setLeafState("checking");
  setStatus("checking", null, "Checking the proof…");
  const i = Number(index);
  let pin = loadPin(log);
  let pinNote = "";
  // What the witnessed check below builds on: the pinned key, the leaf bytes, and the
  // checkpoint this check verified (each null until this check got it).
  const context = { index: i, key: null, leaf: null, cp: null };
  lastContext = context;
  setWitnessStatus("checking", null, "Waiting for the entry's own check…");
  try {
    // 1. The pinned key; pin on first use.
    if (!pin) {
      const text = pyStrip(await fetchText("/vkey"));
      await parseVkey(text);
      pin = savePin(log, text, "first-use");
      pinNote = "Pinned just now, on first use.";
    }
    const key = await parseVkey(pin.vkey);
    context.key = key;
    await showPin(pin, pinNote);

    // 2. The entry: the exact leaf bytes.
    const lines = parseJsonLines(await fetchText("/entries", { start: i, end: i + 1 }));
    const entry = lines.find((line) => line && line.index === i);
    if (!entry || typeof entry.leaf !== "string") {
      throw new TlogError("fetch", `the server sent no entry ${i}`);
    }
    const leaf = b64decode(entry.leaf, "entry leaf");
    if (leaf.length === 0) {
      // Retention removed the body (purge or archive, with a receipt in the log); only its
      // leaf hash is still in the tree, so there is no content here to verify.
      throw new TlogError("retired", `entry ${i}'s body was removed by retention; its leaf ` +
        "hash stays in the tree but there is no content to check");
    }
    context.leaf = leaf;
    let leafText = null;
    try {
      leafText = new TextDecoder("utf-8", { fatal: true }).decode(leaf);
    } catch { /* shown as base64 below */ }
    qs("#raw-leaf").append(leafText ?? entry.leaf);

    // 3. The checkpoint, verified with the pinned key.
    const noteText = await fetchText("/checkpoint");
    let cp;
    try {
      cp = await openCheckpoint(noteText, key);
    } catch (err) {
      const others = otherSigners(noteText, key);
      const byPinned = (() => {
        try {
          return parseNote(noteText).signatures.some(
            (s) => s.name === key.name && bytesEqual(s.keyId, key.keyId));
        } catch {
          return true;
        }
      })();
      if (err instanceof TlogError && err.reason === "signature" && !byPinned &&
          others.length) {
        await keyChangedWarning(key, others);
        throw new TlogError("key-changed", "the checkpoint is not signed by the pinned key");
      }
      throw err;
    }
    fact(checked, "Checkpoint signature", `Ed25519 signature verified with the pinned key ` +
      `${key.name} ${hex(key.keyId)}`);
    fact(checked, "Checkpoint", `tree size ${cp.size}, root `,
      el("code", { id: "checked-root" }, b64encode(cp.root)));

    // 4. Inclusion of our leaf at the checkpoint's size, against the checkpoint's root.
    if (BigInt(i) >= cp.size) {
      throw new TlogError("inclusion", `entry ${i} is not in the signed tree of size ${cp.size}`);
    }
    // As text: parsed keeping each number's literal form (3.0 is not the integer 3).
    const doc = await fetchText("/proof/inclusion", { index: i, size: cp.size.toString() });
    const proof = parseInclusionProof(doc);
    if (proof.leafIndex !== BigInt(i) || proof.treeSize !== cp.size) {
      throw new TlogError("inclusion", "the proof is for another index or tree size");
    }
    const ours = await leafHash(leaf);
    if (!bytesEqual(ours, proof.leafHash)) {
      throw new TlogError("leaf-hash", "the entry's bytes do not hash to the proof's leaf hash");
    }
    fact(checked, "Leaf hash", "SHA-256(0x00 ‖ leaf), computed here (equal to the proof's): ",
      el("code", { id: "checked-leaf-hash" }, b64encode(ours)));
    await verifyInclusion(BigInt(i), cp.size, ours, proof.auditPath, cp.root);
    context.cp = cp;
    fact(checked, "Audit path", `${proof.auditPath.length} hashes, from the leaf at index ${i} ` +
      "to the checkpoint's root (RFC 9162 §2.1.3.2)");

    // 5. Checkpoint memory, under a lock shared with this browser's other tabs: re-read
    //    there, only ever replaced by a larger checkpoint proven consistent with it.
    const memory = await rememberCheckpoint(log, noteText, cp, key, {
      fetchConsistency: (first, second) => fetchText("/proof/consistency",
        { first: first.toString(), second: second.toString() }),
      fetchCheckpoint: () => fetchText("/checkpoint"),
    });
    if (memory.kind === "extends") {
      fact(checked, "Checkpoint memory", `consistent with the checkpoint of size ` +
        `${memory.previous.size} this browser verified before (consistency proof of ` +
        `${memory.proofLength} hashes); remembered the new one`);
    } else if (memory.kind === "same") {
      fact(checked, "Checkpoint memory", "the same tree this browser verified before");
    } else if (memory.kind === "behind") {
      fact(checked, "Checkpoint memory", `this browser already verified a newer checkpoint ` +
        `(size ${memory.previous.size}, in another tab or visit); the server's latest ` +
        `checkpoint, fetched again (size ${memory.latest.size}), is consistent with it and ` +
        `extends this page's (consistency proof of ${memory.proofLength} hashes)` +
        (memory.saved ? "; remembered the latest" : ""));
    } else {
      fact(checked, "Checkpoint memory", "the first checkpoint this browser verified for " +
        "this log; remembered");
    }
    await showPin(pin, pinNote);

    // 6. The fields, from the verified leaf.
    showFields(leafText, entry.event);
    setLeafState("verified");
    setStatus("verified", null, `entry ${i} is in the log's signed tree of size ${cp.size}.`);
  } catch (err) {
    const reason = reasonOf(err);
    setLeafState("failed");
    setStatus("failed", reason, `(${reason}) ${err.message}`);
    if (reason !== "key-changed") { // (that one has its own, louder, warning)
      qs("#proof-alert").append(el("p", { class: "alert-box", role: "alert" },
        `Not verified: ${err.message}. ` + (err instanceof ApiError ? "" :
          "Do not rely on this entry's content as shown by this server.")));
    }
    if (pin && !qs("#pin-info").firstChild) await showPin(pin, pinNote);
  }
  await witnessCheck(context);
}

// ---------------------------------------------------------------- witnessed (W1-W4)

let lastContext = null;

function setWitnessStatus(status, reason, text) {
  const node = qs("#witness-status");
  node.dataset.witnessStatus = status;
  if (reason) node.dataset.witnessReason = reason;
  else delete node.dataset.witnessReason;
  const look = { witnessed: "verified", failed: "failed", "not-witnessed": "checking",
    checking: "checking" }[status] ?? "";
  node.className = `proof-status ${look}`.trim();
  const badge = { witnessed: ["verified", "Verified"], failed: ["failed", "Failed"],
    "not-witnessed": ["warn", reason === "quorum" ? "Quorum not met" : "Pending"],
    checking: ["warn", "Checking"], none: ["", "No policy"] }[status];
  clear(node).append(el("span", { class: `badge ${badge[0]}`.trim() }, badge[1]), " ", text);
}

function posixTime(seconds) {
  const ms = Number(seconds) * 1000;
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? `${seconds} (POSIX seconds)`
    : date.toISOString().replace(".000Z", "Z");
}

function showPolicy(pinned, policy, problem) {
  const info = clear(qs("#policy-info"));
  if (!pinned) {
    fact(info, "Witness policy", "none pinned: the entry is not checked for witnesses");
    return;
  }
  if (problem) {
    fact(info, "Witness policy", `unreadable (${problem}): clear it and pin it again`);
    return;
  }
  fact(info, "Quorum", `${policy.quorum} of ${policy.witnesses.length}`);
  fact(info, "Witnesses", el("ul", { class: "plain", id: "policy-witnesses" },
    policy.witnesses.map((w) => el("li", {}, el("strong", {}, w.name), " ",
      el("code", {}, hex(w.key.keyId)), w.url ? ` (${w.url})` : ""))));
  fact(info, "Pinned", `pasted by you, ${pinned.pinnedAt}`);
  fact(info, "Policy text", el("pre", { class: "leaf", id: "pinned-policy" }, pinned.text));
}

/**
 * Why there is no witnessed proof of entry `i`, as the server tells it (GET /witnessing: the
 * size of the latest checkpoint its witnesses cosigned), or null when that checkpoint covers
 * the entry. Taken on the server's word: it only ever makes the page say "not witnessed",
 * which a server can always bring about by withholding the proof.
 */
async function notWitnessedYet(i) {
  let doc;
  try {
    doc = await api(logPath("/witnessing"));
  } catch (err) {
    throw new TlogError("fetch", `GET /witnessing: ${err.message}`);
  }
  const size = doc?.witnessed_size;
  if (typeof size !== "number") {
    return "Not witnessed yet: no checkpoint of this log has been witnessed yet.";
  }
  if (i >= size) {
    return `Not witnessed yet: entry ${i} is past the latest witnessed checkpoint ` +
      `(size ${size}).`;
  }
  return null;
}

/** W3: the witnessed tree and the page's verified tree are one history (the smaller a
 * prefix of the larger); the number of proof hashes. */
async function sameHistory(wcp, cp) {
  if (wcp.size === cp.size) {
    if (!bytesEqual(wcp.root, cp.root)) {
      throw new TlogError("consistency", `the witnessed checkpoint and the one verified above ` +
        `have the same size ${cp.size} and different roots: two histories`);
    }
    return 0;
  }
  const [small, large] = wcp.size < cp.size ? [wcp, cp] : [cp, wcp];
  const doc = await fetchText("/proof/consistency", { first: small.size.toString(),
    second: large.size.toString() });
  let proof;
  try {
    proof = parseConsistencyProof(doc);
  } catch (err) {
    throw new TlogError("consistency", `the consistency proof is malformed: ${err.message}`);
  }
  if (proof.first !== small.size || proof.second !== large.size) {
    throw new TlogError("consistency", "the consistency proof is for other sizes");
  }
  await verifyConsistency(small.size, large.size, small.root, large.root, proof.consistency);
  return proof.consistency.length;
}

async function witnessCheck(context) {
  const checked = clear(qs("#witness-checked"));
  clear(qs("#witness-alert"));
  const pinned = loadPolicy(log);
  let policy = null;
  let problem = "";
  if (pinned) {
    try {
      policy = await parseWitnessPolicy(pinned.text);
    } catch (err) {
      problem = err.message;
    }
  }
  showPolicy(pinned, policy, problem);
  if (!pinned) {
    setWitnessStatus("none", null, "No witness policy is pinned in this browser: paste " +
      "one below to check which witnesses cosigned a checkpoint that holds this entry.");
    return;
  }
  const i = context.index;
  setWitnessStatus("checking", null, "Checking the witnessed proof…");
  try {
    if (!policy) throw new TlogError("policy", `the pinned witness policy is unreadable: ${problem}`);
    if (!context.key || !context.leaf || context.leaf.length === 0) {
      throw new TlogError("entry", "the entry's own check did not get its verified leaf, so " +
        "there is nothing to look for in a witnessed checkpoint");
    }
    // Asked first, so that an entry past the witnessed checkpoint costs no failed request.
    const pending = await notWitnessedYet(i);
    if (pending) {
      setWitnessStatus("not-witnessed", "pending", pending);
      return;
    }
    let doc;
    try {
      doc = await apiText(logPath("/proof/inclusion"), { query: { index: i, witnessed: "true" } });
    } catch (err) {
      if (err instanceof ApiError && err.status === 400) { // (the server changed its mind)
        setWitnessStatus("not-witnessed", "pending", `Not witnessed yet: ${err.message}.`);
        return;
      }
      throw new TlogError("fetch", `GET /proof/inclusion?witnessed=true: ${err.message}`);
    }
    // W1. The carried checkpoint, signed by the pinned log key.
    const proof = parseInclusionProof(doc);
    const note = parseJsonExact(doc).doc.checkpoint;
    if (typeof note !== "string") {
      throw new TlogError("format", "the witnessed proof carries no checkpoint note");
    }
    const wcp = await openCheckpoint(note, context.key);
    fact(checked, "Witnessed checkpoint", `tree size ${wcp.size}, root `,
      el("code", { id: "witnessed-root" }, b64encode(wcp.root)),
      `, signed by the pinned key ${context.key.name} ${hex(context.key.keyId)}`);
    // W2. Our leaf in that tree.
    if (proof.leafIndex !== BigInt(i) || proof.treeSize !== wcp.size) {
      throw new TlogError("inclusion", "the witnessed proof is for another index or tree size");
    }
    const ours = await leafHash(context.leaf);
    if (!bytesEqual(ours, proof.leafHash)) {
      throw new TlogError("leaf-hash", "the entry's bytes do not hash to the witnessed " +
        "proof's leaf hash");
    }
    await verifyInclusion(BigInt(i), wcp.size, ours, proof.auditPath, wcp.root);
    fact(checked, "Inclusion", `audit path of ${proof.auditPath.length} hashes from this ` +
      "entry's leaf hash to the witnessed root");
    // W3. One history with the checkpoint verified above.
    if (context.cp) {
      const n = await sameHistory(wcp, context.cp);
      fact(checked, "Same history", n === 0 ? "the same tree as the checkpoint verified above"
        : `consistent with the checkpoint of size ${context.cp.size} verified above ` +
          `(consistency proof of ${n} hashes)`);
    }
    // W4. The cosignatures, against the pinned policy.
    const found = await checkWitnessed(note, policy);
    const names = Object.keys(found.cosigned).sort();
    const list = el("ul", { class: "plain", id: "witness-cosigners" });
    for (const w of policy.witnesses) {
      const at = Object.hasOwn(found.cosigned, w.name) ? found.cosigned[w.name] : null;
      list.append(el("li", { dataset: { witness: w.name, cosigned: at === null ? "no" : "yes" } },
        el("strong", {}, w.name), at === null ? ": no cosignature on this checkpoint"
          : `: cosignature verified, signed at ${posixTime(at)}`));
    }
    fact(checked, "Cosignatures (cosignature/v1)", list);
    const who = names.length ? names.join(", ") : "no witness of your policy";
    const count = `(${names.length} of quorum ${found.quorum})`;
    if (found.met) {
      setWitnessStatus("witnessed", null, `Witnessed: cosigned by ${who} ${count}; ` +
        `checkpoint of size ${wcp.size}.`);
    } else {
      setWitnessStatus("not-witnessed", "quorum", `Not witnessed under your policy: ` +
        `cosigned by ${who} ${count}; missing ${found.missing.join(", ")}.`);
    }
  } catch (err) {
    const reason = reasonOf(err);
    setWitnessStatus("failed", reason, `(${reason}) ${err.message}`);
    if (reason !== "entry") {
      qs("#witness-alert").append(el("p", { class: "alert-box", role: "alert" },
        `Witnessing not verified: ${err.message}.`));
    }
  }
}

async function rerunWitnessCheck() {
  if (!lastContext) return;
  busy(true);
  try {
    await witnessCheck(lastContext);
  } finally {
    busy(false);
  }
}

function showFields(leafText, opened) {
  const box = clear(qs("#fields"));
  let leafObj;
  try {
    leafObj = JSON.parse(leafText);
  } catch {
    box.append(el("p", { class: "notice" }, "The leaf is not a JSON object."));
    return;
  }
  if (leafObj === null || typeof leafObj !== "object" || Array.isArray(leafObj)) {
    box.append(el("p", { class: "notice" }, "The leaf is not a JSON object."));
    return;
  }
  const dl = el("dl", { class: "facts", id: "event-fields" });
  for (const [k, v] of Object.entries(leafObj)) {
    if (k === "sealed") continue;
    fact(dl, k, valueNode(v));
  }
  box.append(dl);
  const sealed = leafObj.sealed;
  if (sealed && typeof sealed === "object" && Array.isArray(sealed.fields)) {
    const erased = opened && Array.isArray(opened.erased) ? opened.erased : [];
    const stillSealed = opened && opened.sealed;
    const keyIdText = typeof sealed.ct === "string" ? sealed.ct.split(":")[0] : "";
    box.append(el("h3", {}, "Sealed personal fields"),
      el("p", { class: "muted small" }, "In the verified leaf these fields are one " +
        `AES-256-GCM token (key ${keyIdText}); the leaf commits to the ciphertext. A value ` +
        "beside a field was opened by the server for your role, and “erased” is the server's " +
        "statement that the field's key was destroyed: neither is covered by the proof."));
    const sdl = el("dl", { class: "facts", id: "sealed-fields" });
    for (const path of sealed.fields) {
      const found = opened && !stillSealed ? atPath(opened, String(path)) : { found: false };
      let shown;
      // Both are the server's statements about the sealed token, which the proof does not
      // cover: the leaf holds ciphertext, and whether its key is gone is the server's word.
      if (erased.includes(path)) {
        shown = el("span", { class: "badge warn", dataset: { claim: "erased" } },
          "erased (key destroyed), says the server");
      } else if (found.found) {
        shown = el("span", {}, el("span", { class: "badge warn" }, "opened by the server"), " ",
          valueNode(found.value));
      } else shown = el("span", { class: "muted" }, "not opened for your role");
      fact(sdl, String(path), el("span", { class: "badge" }, "sealed"), " ", shown);
    }
    box.append(sdl);
    box.append(el("p", { class: "small wrap" }, "Token: ",
      el("code", {}, String(sealed.ct ?? ""))));
  }
}

// ---------------------------------------------------------------- the pin form

qs("#pin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = qs("#pin-form-status");
  const text = qs("#trusted-vkey").value;
  try {
    const { keptMemory } = await pinPasted(log, text);
    clear(status).append(el("span", { class: "success" }, "Pinned. " + (keptMemory
      ? "The remembered checkpoint verifies with it and is kept."
      : "No remembered checkpoint verifies with it: memory starts again.")));
    qs("#trusted-vkey").value = "";
    await check();
  } catch (err) {
    clear(status).append(el("span", { class: "error", role: "alert" },
      `Not pinned: ${err.message}`));
  }
});

qs("#pin-forget").addEventListener("click", async () => {
  forget(log);
  clear(qs("#pin-form-status")).append("Pin and checkpoint memory forgotten; the check " +
    "below pinned the key the server presents now.");
  await check();
});

qs("#policy-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = qs("#policy-form-status");
  try {
    const { policy } = await pinPolicy(log, qs("#trusted-policy").value);
    clear(status).append(el("span", { class: "success" }, `Pinned: ${policy.quorum} of ` +
      `${policy.witnesses.length} witnesses must cosign.`));
    qs("#trusted-policy").value = "";
    await rerunWitnessCheck();
  } catch (err) {
    clear(status).append(el("span", { class: "error", role: "alert" },
      `Not pinned: ${err.message}`));
  }
});

qs("#policy-forget").addEventListener("click", async () => {
  forgetPolicy(log);
  clear(qs("#policy-form-status")).append("Witness policy cleared.");
  await rerunWitnessCheck();
});

check();
