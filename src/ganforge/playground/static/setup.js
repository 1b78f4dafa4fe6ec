// The setup object (see the contract): a deep copy helper, the URL form `#setup=<base64url JSON>` and the
// JSON file form.

export const clone = (x) => JSON.parse(JSON.stringify(x));

export function encodeSetup(setup) {
  const bytes = new TextEncoder().encode(JSON.stringify(setup));
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function decodeSetup(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

// The setup in the page URL's hash, or null when there is none (a broken one throws: the caller says so).
export function setupFromHash() {
  const m = /(?:^#|&)setup=([^&]+)/.exec(location.hash);
  return m ? decodeSetup(m[1]) : null;
}

// Safari and Firefox refuse (throw on) more than about 100 replaceState calls in 30 s, and a drag on the
// drawing plane changes the setup on every pointer move: write at most every HASH_EVERY_MS, the last setup
// always landing, and never let a refusal break the edit that caused it.
const HASH_EVERY_MS = 500;
let hashPending = null;
let hashTimer = null;
let hashWrittenAt = -Infinity;

function flushHash() {
  hashTimer = null;
  hashWrittenAt = performance.now();
  try {
    history.replaceState(null, "", location.pathname + location.search + hashPending);
  } catch {
    // over the browser's rate limit: the next change writes the hash again
  }
}

export function writeHash(setup) {
  hashPending = "#setup=" + encodeSetup(setup);
  const wait = hashWrittenAt + HASH_EVERY_MS - performance.now();
  if (wait <= 0 && hashTimer === null) flushHash();
  else if (hashTimer === null) hashTimer = setTimeout(flushHash, Math.max(0, wait));
  return hashPending;
}

// A link to share: without the token (the receiver opens it on their own playground, which asks for its token).
export function shareUrl(setup) {
  return location.origin + location.pathname + "#setup=" + encodeSetup(setup);
}

export function downloadJson(obj, name) {
  const blob = new Blob([JSON.stringify(obj, null, 2) + "\n"], { type: "application/json" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}
