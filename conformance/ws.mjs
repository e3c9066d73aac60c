// Runs the graphql-ws client (the reference client of graphql-transport-ws) against the server: a
// query and a subscription over one websocket, checking the answers.
//   node ws.mjs ws://127.0.0.1:8080/graphql
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const url = process.argv[2];
if (!url) {
  console.error('usage: node ws.mjs <websocket url>');
  process.exit(2);
}
const timer = setTimeout(() => {
  console.error('graphql-ws: timed out after 20 s');
  process.exit(1);
}, 20000);

const client = createClient({ url, webSocketImpl: WebSocket, retryAttempts: 0, lazy: true });

function collect(payload, max) {
  return new Promise((resolve, reject) => {
    const results = [];
    const dispose = client.subscribe(payload, {
      next: (r) => {
        results.push(r);
        if (results.length === max) {
          dispose();
          resolve(results);
        }
      },
      error: reject,
      complete: () => resolve(results),
    });
  });
}

try {
  const [q] = await collect({ query: '{ serverInfo { version startedAt } }' }, 1);
  if (q.errors || !q.data?.serverInfo?.version) throw new Error('query: unexpected answer ' + JSON.stringify(q));

  const ticks = await collect({ query: 'subscription { serverTime(intervalSeconds: 1) }' }, 2);
  if (ticks.length !== 2 || ticks.some((t) => t.errors || !Date.parse(t.data?.serverTime))) {
    throw new Error('subscription: unexpected answers ' + JSON.stringify(ticks));
  }

  let refused;
  try {
    await collect({ query: '{ nope }' }, 1);
  } catch (errs) {
    refused = errs;
  }
  if (!Array.isArray(refused) || !refused[0]?.message) throw new Error('invalid query: expected an error message, got ' + JSON.stringify(refused));

  console.log(`graphql-ws: query ok (version ${q.data.serverInfo.version}), subscription ok (2 ticks), invalid query refused ("${refused[0].message}")`);
  await client.dispose();
  clearTimeout(timer);
} catch (e) {
  console.error('graphql-ws: ' + (e?.message ?? JSON.stringify(e)));
  process.exit(1);
}
