// fraud-scorer in JavaScript: a port of guests/fraud-scorer (Rust) with the same topics,
// config, factors, weights and alerts, written byte for byte as the Rust version writes
// them. It scores every card transaction against its customer's own history and profile,
// and sends the suspicious ones to `fraud-alerts`.
//
// Inputs are `transactions` and `customer-profiles`, both keyed by customer id and
// co-partitioned, so a customer's profile (the table side of the join) and history live in
// the partition state next to their transactions: one state read and one write per
// transaction. It keeps its own form of that state (JSON, which the engine parses in
// native code), so it takes over neither the Rust nor the Go version's state. The code
// keeps to indexed loops and few calls, which the engine's interpreter runs fastest.

import { Reject } from './streamfn.js';

const TRANSACTIONS = 'transactions';
const PROFILES = 'customer-profiles';
const ALERTS = 'fraud-alerts';

/** Score at or above which a transaction is alerted, unless config `alert_threshold` says. */
export const DEFAULT_ALERT_THRESHOLD = 0.7;

/** How far back the velocity and card-testing factors look. */
const VELOCITY_WINDOW_MS = 5 * 60_000;
/** Transactions in the window that count as a burst, however slow the customer's pace... */
const VELOCITY_MIN_COUNT = 6;
/** ...and this many times their usual pace does for a busier customer. */
const VELOCITY_PACE_FACTOR = 3.0;
/** Transactions needed before a customer's merchants and pace say anything... */
const MIN_HISTORY = 5;
/** ...and before the spread of their amounts does. */
const MIN_AMOUNT_HISTORY = 10;
/** Probes (tiny amounts at new merchants) within the window that look like card testing. */
const CARD_TESTING_PROBES = 2;
/** A probe is below this many currency units and below this share of the customer's mean. */
const PROBE_MAX_AMOUNT = 5.0;
const PROBE_MAX_SHARE = 0.5;
/** The least deviation assumed, as a share of the mean. */
const MIN_DEVIATION_SHARE = 0.1;
/** A spike is this many times the mean (the second for the larger weight) and this many deviations above it. */
const SPIKE_RATIO = 3.0;
const EXTREME_RATIO = 8.0;
const SPIKE_Z = 3.0;
/** Accounts younger than this many days are riskier. */
const NEW_ACCOUNT_DAYS = 30;

/** Bounds of the per-customer state, so that it stays small whatever the traffic. */
const MAX_RECENT = 32;
const MAX_MERCHANTS = 24;
const MAX_COUNTRIES = 8;

/** Factor weights; a score is the sum of the factors present, capped at 1. */
const W_VELOCITY = 0.15;
const W_CARD_TESTING = 0.65;
const W_AMOUNT_SPIKE = 0.2;
const W_AMOUNT_EXTREME = 0.45;
const W_NEW_COUNTRY = 0.25;
const W_NEW_MERCHANT = 0.1;
const W_HIGH_RISK_TIER = 0.1;
const W_NEW_ACCOUNT = 0.1;

const RISK_TIERS = new Map([
  ['low', 0],
  ['medium', 1],
  ['high', 2],
]);
const HIGH = 2;

/** Scores a transaction, or stores a customer profile, depending on the input topic. */
export function handle(event, ctx) {
  if (event.topic === TRANSACTIONS) return scoreTransaction(event, ctx);
  if (event.topic === PROFILES) return storeProfile(event, ctx);
  throw new Reject(`fraud-scorer reads \`${TRANSACTIONS}\` and \`${PROFILES}\`, not \`${event.topic}\``);
}

const isText = (value) => typeof value === 'string';
const isWhole = (value) => Number.isSafeInteger(value);

function storeProfile(event, ctx) {
  const record = event.json();
  if (
    record === null ||
    typeof record !== 'object' ||
    !isText(record.customer_id) ||
    !isText(record.home_country) ||
    !isText(record.risk_tier) ||
    !isWhole(record.account_age_days) ||
    record.account_age_days < 0 ||
    record.account_age_days > 0xffffffff
  ) {
    throw new Reject('profile lacks customer_id, home_country, risk_tier or account_age_days');
  }
  const tier = RISK_TIERS.get(record.risk_tier);
  if (tier === undefined) {
    throw new Reject(`unknown risk_tier ${JSON.stringify(record.risk_tier)}: expected low, medium or high`);
  }
  const key = `c/${record.customer_id}`;
  const customer = loadCustomer(ctx, key);
  customer[PROFILE] = [record.home_country, tier, record.account_age_days];
  ctx.setJson(key, stored(customer));
}

function scoreTransaction(event, ctx) {
  const tx = event.json();
  if (
    tx === null ||
    typeof tx !== 'object' ||
    !isText(tx.id) ||
    !isText(tx.customer_id) ||
    typeof tx.amount !== 'number' ||
    !isText(tx.merchant) ||
    !isText(tx.country) ||
    !isWhole(tx.timestamp_ms)
  ) {
    throw new Reject('transaction lacks id, customer_id, amount, merchant, country or timestamp_ms');
  }
  // JSON has no NaN, but a number too large for a double parses as Infinity.
  if (!(tx.amount >= 0 && tx.amount < Infinity)) throw new Reject(`transaction ${tx.id} has amount ${tx.amount}`);
  const threshold = alertThreshold(ctx);
  const key = `c/${tx.customer_id}`;
  const customer = loadCustomer(ctx, key);
  const factors = [];
  const { score, probe } = assess(tx, customer, factors);
  if (score >= threshold) {
    ctx.info(`alert for ${tx.customer_id} on ${tx.id}: score ${score} (${factors.join(', ')})`);
    ctx.emit(
      ALERTS,
      tx.customer_id,
      `{"transaction_id":${JSON.stringify(tx.id)},"customer_id":${JSON.stringify(tx.customer_id)},` +
        `"amount":${rustFloat(tx.amount)},"score":${rustFloat(score)},` +
        `"factors":${JSON.stringify(factors)},"timestamp_ms":${tx.timestamp_ms}}`,
    );
  }
  record(customer, tx, probe);
  ctx.setJson(key, stored(customer));
}

function alertThreshold(ctx) {
  const raw = ctx.config('alert_threshold');
  if (raw === null) return DEFAULT_ALERT_THRESHOLD;
  const value = Number(raw.trim() === '' ? NaN : raw);
  if (Number.isNaN(value)) throw new Reject(`config alert_threshold=${JSON.stringify(raw)} does not parse`);
  return value;
}

// A customer's state, a JSON array: [profile or null, count, mean, m2, first ms, last ms,
// recent, countries, merchants], where a profile is [home country, risk tier, account age
// in days], `recent` holds the transactions of the last velocity window by time as pairs
// of timestamp and probe (1 or 0) one after the other, and `countries` and `merchants`
// (by tag) are most recently used last. The mean and m2 are Welford's running mean and
// sum of squared deviations of the amount.
const PROFILE = 0;
const COUNT = 1;
const MEAN = 2;
const M2 = 3;
const FIRST_MS = 4;
const LAST_MS = 5;
const RECENT = 6;
const COUNTRIES = 7;
const MERCHANTS = 8;

function loadCustomer(ctx, key) {
  const customer = ctx.getJson(key);
  if (customer === null) return [null, 0, 0, 0, 0, 0, [], [], []];
  if (!Array.isArray(customer) || customer.length !== 9) {
    throw new Reject(`state key ${JSON.stringify(key)} does not hold the expected value`);
  }
  if (typeof customer[MEAN] === 'string') customer[MEAN] = Number(customer[MEAN]);
  if (typeof customer[M2] === 'string') customer[M2] = Number(customer[M2]);
  return customer;
}

/**
 * `customer` as JSON holds it: the sum of squares overflows to infinity after an amount
 * near 1e154, which JSON has no number for, so it is kept as text ("Infinity").
 */
function stored(customer) {
  if (!Number.isFinite(customer[MEAN])) customer[MEAN] = String(customer[MEAN]);
  if (!Number.isFinite(customer[M2])) customer[M2] = String(customer[M2]);
  return customer;
}

/** The score of `tx` for `customer`, the factors present added to `factors`. */
function assess(tx, customer, factors) {
  const count = customer[COUNT];
  const mean = customer[MEAN];
  const experienced = count >= MIN_HISTORY;
  const newMerchant = experienced && !customer[MERCHANTS].includes(merchantTag(tx.merchant));
  const probe = newMerchant && tx.amount < rustMin(PROBE_MAX_AMOUNT, PROBE_MAX_SHARE * mean);
  const since = tx.timestamp_ms - VELOCITY_WINDOW_MS;
  const recent = customer[RECENT];
  let inWindow = 0;
  let probes = 1;
  for (let i = 0; i < recent.length; i += 2) {
    if (recent[i] > since) {
      inWindow++;
      probes += recent[i + 1];
    }
  }
  let score = 0;
  if (inWindow + 1 >= velocityLimit(customer)) {
    factors.push('velocity');
    score += W_VELOCITY;
  }
  if (probe && probes >= CARD_TESTING_PROBES) {
    factors.push('card_testing');
    score += W_CARD_TESTING;
  }
  const ratio = amountRatio(customer, tx.amount);
  if (ratio >= EXTREME_RATIO) {
    factors.push('amount_spike');
    score += W_AMOUNT_EXTREME;
  } else if (ratio >= SPIKE_RATIO) {
    factors.push('amount_spike');
    score += W_AMOUNT_SPIKE;
  }
  const profile = customer[PROFILE];
  let newCountry = !customer[COUNTRIES].includes(tx.country);
  newCountry = profile === null ? newCountry && experienced : newCountry && profile[0] !== tx.country;
  if (newCountry) {
    factors.push('new_country');
    score += W_NEW_COUNTRY;
  }
  if (newMerchant) {
    factors.push('new_merchant');
    score += W_NEW_MERCHANT;
  }
  if (profile !== null && profile[1] === HIGH) {
    factors.push('high_risk_tier');
    score += W_HIGH_RISK_TIER;
  }
  if (profile !== null && profile[2] < NEW_ACCOUNT_DAYS) {
    factors.push('new_account');
    score += W_NEW_ACCOUNT;
  }
  // Rounded, so that sums of weights compare with a threshold as written.
  return { score: Math.round(rustMin(score, 1) * 1000) / 1000, probe };
}

/** How many transactions within the velocity window make a burst for this customer. */
function velocityLimit(customer) {
  const count = customer[COUNT];
  const span = customer[LAST_MS] - customer[FIRST_MS];
  if (count < MIN_HISTORY || span < VELOCITY_WINDOW_MS) return VELOCITY_MIN_COUNT;
  const usual = (count * VELOCITY_WINDOW_MS) / span;
  return Math.max(VELOCITY_MIN_COUNT, Math.ceil(VELOCITY_PACE_FACTOR * usual));
}

/**
 * How many times the customer's mean `amount` is, when it is also far outside their usual
 * spread, or 0 (a customer whose amounts vary wildly does not spike by a ratio alone).
 */
function amountRatio(customer, amount) {
  const count = customer[COUNT];
  const mean = customer[MEAN];
  if (count < MIN_AMOUNT_HISTORY || mean <= 0) return 0;
  const deviation = Math.sqrt(customer[M2] / (count - 1));
  // A customer who always pays the same would make any change look infinite.
  const z = (amount - mean) / rustMax(deviation, MIN_DEVIATION_SHARE * mean);
  return z >= SPIKE_Z ? amount / mean : 0;
}

function record(customer, tx, probe) {
  const at = tx.timestamp_ms;
  if (customer[COUNT] === 0) {
    customer[FIRST_MS] = at;
    customer[LAST_MS] = at;
  }
  customer[FIRST_MS] = Math.min(customer[FIRST_MS], at);
  customer[LAST_MS] = Math.max(customer[LAST_MS], at);
  const count = ++customer[COUNT];
  const delta = tx.amount - customer[MEAN];
  customer[MEAN] += delta / count;
  customer[M2] += delta * (tx.amount - customer[MEAN]);

  // The window's transactions by time, this one among them, the oldest dropped past the bound.
  const since = customer[LAST_MS] - VELOCITY_WINDOW_MS;
  const old = customer[RECENT];
  const recent = [];
  let placed = at <= since;
  for (let i = 0; i < old.length; i += 2) {
    if (old[i] <= since) continue;
    if (!placed && old[i] > at) {
      recent.push(at, probe ? 1 : 0);
      placed = true;
    }
    recent.push(old[i], old[i + 1]);
  }
  if (!placed) recent.push(at, probe ? 1 : 0);
  customer[RECENT] = recent.length > 2 * MAX_RECENT ? recent.slice(recent.length - 2 * MAX_RECENT) : recent;
  remember(customer[COUNTRIES], tx.country, MAX_COUNTRIES);
  remember(customer[MERCHANTS], merchantTag(tx.merchant), MAX_MERCHANTS);
}

/**
 * A merchant id as a 32-bit FNV-1a hash of its UTF-8 bytes. A new merchant's tag matches
 * one of the few dozen a customer's state remembers about once in a hundred million new
 * merchants, and the match only hides that the merchant is new.
 */
function merchantTag(merchant) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < merchant.length; i++) {
    const code = merchant.charCodeAt(i);
    // Past ASCII, a character's UTF-8 bytes are not its code: hash the encoded bytes.
    if (code > 0x7f) return hashBytes(0x811c9dc5, encoder.encode(merchant));
    hash = Math.imul(hash ^ code, 0x01000193) >>> 0;
  }
  return hash;
}

function hashBytes(hash, bytes) {
  for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash ^ bytes[i], 0x01000193) >>> 0;
  return hash;
}

const encoder = new TextEncoder();

/** Marks `value` the most recently used of `list`, dropping the least recent past `limit`. */
function remember(list, value, limit) {
  const at = list.indexOf(value);
  if (at >= 0) list.splice(at, 1);
  else if (list.length >= limit) list.shift();
  list.push(value);
}

// Rust's f64::min and f64::max, which ignore a NaN operand where Math.min and Math.max
// return it, so that scores match the Rust version's.
function rustMin(a, b) {
  if (Number.isNaN(a)) return b;
  if (Number.isNaN(b)) return a;
  return Math.min(a, b);
}

function rustMax(a, b) {
  if (Number.isNaN(a)) return b;
  if (Number.isNaN(b)) return a;
  return Math.max(a, b);
}

/**
 * `x` in JSON as serde_json writes an f64: the shortest digits that read back as `x`
 * (which JavaScript's own conversion also finds), in plain notation with at least one
 * decimal when its magnitude is in [1e-5, 1e16), as `1.5e-7` outside it.
 */
export function rustFloat(x) {
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const magnitude = Math.abs(x);
  if (magnitude >= 1e-5 && magnitude < 1e16) {
    const plain = String(x);
    return plain.includes('.') ? plain : `${plain}.0`;
  }
  return x.toExponential().replace('e+', 'e');
}
