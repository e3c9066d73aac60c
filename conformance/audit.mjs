// Runs the graphql-http package's auditServer against a GraphQL endpoint and fails unless every
// MUST and every SHOULD audit passes. MAY audits are reported, not required.
//   node audit.mjs http://127.0.0.1:8080/graphql
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <graphql url>');
  process.exit(2);
}

const results = await auditServer({ url });
const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
const failed = [];
for (const r of results) {
  counts[r.status]++;
  if (r.status === 'ok') continue;
  const level = r.name.split(' ')[0]; // MUST, SHOULD or MAY
  const line = `${r.status.toUpperCase()} ${r.id} ${r.name}: ${r.reason}`;
  if (level === 'MAY') {
    console.log('  (may) ' + line);
  } else {
    failed.push(line);
  }
}
const byLevel = {};
for (const r of results) {
  const level = r.name.split(' ')[0];
  byLevel[level] ??= { total: 0, ok: 0 };
  byLevel[level].total++;
  if (r.status === 'ok') byLevel[level].ok++;
}
for (const f of failed) console.log('  ' + f);
const summary = Object.entries(byLevel).map(([l, c]) => `${l} ${c.ok}/${c.total}`).join(', ');
console.log(`graphql-http audit: ${results.length} audits, ${counts.ok} ok, ${counts.notice} notice, ${counts.warn} warn, ${counts.error} error (${summary})`);
process.exit(failed.length === 0 ? 0 : 1);
