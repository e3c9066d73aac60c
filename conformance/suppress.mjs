// Sends, through @segment/analytics-node, the calls of one suppressed subject and of one free
// subject, for the suppression test: a track and an identify by userId for each, a page by
// anonymousId, and an identify whose only tie to the first subject is its email trait.
//   node suppress.mjs <server url> <write key> <suppressed userId> <suppressed anonymousId> <suppressed email> <free userId>
// Output: the last line is a one-line summary; the line before it is JSON: {"statuses": {"200": n}}.
// Exits 1 when the library reports a call undelivered (a suppressed call is still answered 200).
import { Analytics } from '@segment/analytics-node';

const [host, writeKey, userId, anonymousId, email, freeUserId] = process.argv.slice(2);
if (!freeUserId) {
  console.error('usage: node suppress.mjs <server url> <write key> <userId> <anonymousId> <email> <free userId>');
  process.exit(2);
}
const timer = setTimeout(() => {
  console.error('analytics-node: timed out after 60 s');
  process.exit(1);
}, 60000);

const statuses = {};
const failures = [];
const analytics = new Analytics({ writeKey, host, flushAt: 1, maxRetries: 0 });
analytics.on('http_response', (res) => { statuses[res.status] = (statuses[res.status] ?? 0) + 1; });
const delivered = (what) => (err, ctx) => {
  const failed = err ?? ctx?.failedDelivery()?.reason;
  if (failed) failures.push(`${what}: ${failed?.message ?? failed}`);
};

analytics.track({ userId, event: 'Secret Purchase', properties: { note: `private note of ${userId}` } }, delivered('suppressed track'));
analytics.identify({ userId, traits: { name: 'Suppressed Person' } }, delivered('suppressed identify'));
analytics.page({ anonymousId, name: 'Private Page' }, delivered('suppressed page'));
analytics.identify({ userId: `other-${freeUserId}`, traits: { email: email.toUpperCase() } }, delivered('suppressed by email'));
analytics.track({ userId: freeUserId, event: 'Public Purchase' }, delivered('free track'));
analytics.identify({ userId: freeUserId, traits: { name: 'Free Person' } }, delivered('free identify'));

await analytics.closeAndFlush({ timeout: 50000 });
clearTimeout(timer);
console.log(JSON.stringify({ statuses }));
if (failures.length > 0) {
  for (const f of failures) console.error('  undelivered: ' + f);
  console.log(`analytics-node ${analytics.VERSION}: ${failures.length} calls undelivered`);
  process.exit(1);
}
console.log(`analytics-node ${analytics.VERSION}: 4 calls of suppressed subjects and 2 of a free one delivered`);
