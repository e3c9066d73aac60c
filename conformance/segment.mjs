// Sends events through @segment/analytics-node, Segment's own Node.js library, to the server's
// tracking API: one call of each type (track, identify, page, screen, group, alias) from a client
// with flushAt: 1, then 50 track calls from a client with flushAt: 50 (one /v1/batch request).
//   node segment.mjs <server url> <write key> [maxRetries, default 0]
// Output: the last line is a one-line summary. The line before it is JSON for the Go test:
//   {"events": [...], "requests": n, "statuses": {"200": n, "429": n}, "retryWaitsMs": [ms, ...]}
// where events are the events exactly as the library put them on the wire (one per messageId, from
// its http_request emitter events), and retryWaitsMs the time between each 429 answer and the
// library's next attempt with the same batch. Exits 1 when the library reports an event undelivered.
import { Analytics } from '@segment/analytics-node';
import { randomUUID } from 'node:crypto';

const [host, writeKey, retriesArg = '0'] = process.argv.slice(2);
const maxRetries = Number(retriesArg);
if (!host || !writeKey || !Number.isInteger(maxRetries) || maxRetries < 0) {
  console.error('usage: node segment.mjs <server url> <write key> [maxRetries]');
  process.exit(2);
}
const timer = setTimeout(() => {
  console.error('analytics-node: timed out after 60 s');
  process.exit(1);
}, 60000);

const run = randomUUID().slice(0, 8);
const wire = new Map(); // messageId -> event as sent
const statuses = {};
let requests = 0;
const rejectedAt = new Map(); // first messageId of a batch -> when its last 429 arrived
const retryWaitsMs = [];

function watch(analytics) {
  analytics.on('http_request', (req) => {
    requests++;
    const body = JSON.parse(req.body);
    const first = body.batch[0]?.messageId;
    if (rejectedAt.has(first)) {
      retryWaitsMs.push(Date.now() - rejectedAt.get(first));
      rejectedAt.delete(first);
    }
    for (const e of body.batch) wire.set(e.messageId, e);
  });
  analytics.on('http_response', (res) => {
    statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    if (res.status === 429) rejectedAt.set(JSON.parse(res.body).batch[0]?.messageId, Date.now());
  });
}

const failures = [];
function delivered(what) {
  return (err, ctx) => {
    const failed = err ?? ctx?.failedDelivery()?.reason;
    if (failed) failures.push(`${what}: ${failed?.message ?? failed}`);
  };
}

const userId = `seg-user-${run}`;
const anonymousId = `seg-anon-${run}`;
const id = (what) => `seg-${run}-${what}`;

const single = new Analytics({ writeKey, host, flushAt: 1, maxRetries });
watch(single);
single.identify({
  userId, anonymousId, messageId: id('identify'),
  traits: { email: `ada-${run}@example.com`, name: 'Ada Lovelace', plan: 'team', logins: 42, vip: true,
    address: { city: 'Zürich', postalCode: '8001' }, tags: ['beta', 'ops'], nickname: 'Zoë 🚀' },
}, delivered('identify'));
single.track({
  userId, messageId: id('track'), event: 'Order Completed', timestamp: new Date('2026-01-02T03:04:05.678Z'),
  properties: { orderId: `order-${run}`, total: 39.95, currency: 'EUR', coupon: null, gift: false,
    products: [{ sku: 'sku-1', quantity: 2, price: 9.99 }, { sku: 'sku-2', quantity: 1, price: 20 }] },
  context: { campaign: { name: 'winter', source: 'newsletter' } },
}, delivered('track'));
single.page({
  anonymousId, messageId: id('page'), category: 'Docs', name: 'Getting Started',
  properties: { url: 'https://example.com/docs/start?x=1', path: '/docs/start', referrer: 'https://example.org/' },
}, delivered('page'));
single.screen({
  userId, messageId: id('screen'), name: 'Settings', category: 'Account',
  properties: { section: 'notifications', depth: 3 },
}, delivered('screen'));
single.group({
  userId, messageId: id('group'), groupId: `seg-group-${run}`,
  traits: { name: 'Acme Inc.', employees: 120, industry: 'Manufacturing' },
}, delivered('group'));
single.alias({ userId, previousId: anonymousId, messageId: id('alias') }, delivered('alias'));

const batched = new Analytics({ writeKey, host, flushAt: 50, maxRetries });
watch(batched);
for (let i = 0; i < 50; i++) {
  batched.track({
    anonymousId: `seg-anon-${run}-${i % 7}`, messageId: id(`batch-${String(i).padStart(2, '0')}`), event: 'Batch Item Viewed',
    properties: { index: i, run, price: i * 1.5, label: `item ${i}` },
  }, delivered(`batch ${i}`));
}

await Promise.all([single.closeAndFlush({ timeout: 50000 }), batched.closeAndFlush({ timeout: 50000 })]);
clearTimeout(timer);

console.log(JSON.stringify({ events: [...wire.values()], requests, statuses, retryWaitsMs }));
const answers = Object.entries(statuses).map(([s, n]) => `${n}x ${s}`).join(', ');
const waited = retryWaitsMs.filter((ms) => ms >= 990); // timers may fire a millisecond early
const wait = retryWaitsMs.length === 0 ? '' : `; ${retryWaitsMs.length} retries after a 429, ${waited.length} of them after the Retry-After second`;
if (failures.length > 0) {
  for (const f of failures) console.error('  undelivered: ' + f);
  console.log(`analytics-node ${single.VERSION} (maxRetries ${maxRetries}): ${failures.length} of ${wire.size} events undelivered; ${requests} requests (${answers})`);
  process.exit(1);
}
console.log(`analytics-node ${single.VERSION} (maxRetries ${maxRetries}): ${wire.size} events (track, identify, page, screen, group, alias, a batch of 50) delivered in ${requests} requests (${answers})${wait}`);
