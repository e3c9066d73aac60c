// Subscriptions through the graphql-ws client (the reference client of graphql-transport-ws), as a
// dashboard uses them: user B hears of user A's change and A does not; B's source status stream
// sees a source go RECEIVING when events arrive; an outsider's subscription to the workspace is
// refused. The Go test (internal/app/subscriptions_test.go) builds the users, the workspace and the
// source, passes them in SUBSCRIPTIONS_FIXTURE, waits until the server runs these subscriptions,
// then makes the changes: A renames the source, B creates an access token (which A hears of), and
// an event arrives at the source.
//   SUBSCRIPTIONS_FIXTURE='{"a":"<token>","aUserId":"usr_…","b":"<token>","bUserId":"usr_…","outsider":"<token>",
//     "workspaceId":"ws_…","sourceId":"src_…"}' \
//     node subscriptions.mjs ws://127.0.0.1:8080/graphql
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const url = process.argv[2];
const fixture = JSON.parse(process.env.SUBSCRIPTIONS_FIXTURE ?? 'null');
if (!url || !fixture) {
  console.error('usage: SUBSCRIPTIONS_FIXTURE=<json> node subscriptions.mjs <websocket url>');
  process.exit(2);
}
const timer = setTimeout(() => {
  console.error('subscriptions: timed out after 30 s; seen so far: ' + JSON.stringify(seen));
  process.exit(1);
}, 30000);

const seen = { a: [], b: [], status: [] };

function client(token) {
  return createClient({
    url,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: true,
    connectionParams: { Authorization: 'Bearer ' + token },
  });
}

// first resolves with the first result that satisfies want, and rejects with the errors of an
// error message or when the subscription completes first.
function first(c, payload, log, want) {
  return new Promise((resolve, reject) => {
    const dispose = c.subscribe(payload, {
      next: (r) => {
        log?.push(r);
        if (r.errors) reject(new Error('errors in a result: ' + JSON.stringify(r.errors)));
        else if (want(r.data)) {
          dispose();
          resolve(r.data);
        }
      },
      error: reject,
      complete: () => reject(new Error('completed before the expected result: ' + JSON.stringify(payload))),
    });
  });
}

const notification = 'subscription { notificationReceived { id type resourceId actor { id name } workspace { id } } }';
const sourceStatus = 'subscription($ws: ID!) { sourceStatusChanged(workspaceId: $ws) { id name status lastSeenAt } }';
const ws = { ws: fixture.workspaceId };
const [a, b, outsider] = [client(fixture.a), client(fixture.b), client(fixture.outsider)];

try {
  // A subscription refused when it starts is one result with errors and no data, then complete (as
  // graphql-ws's own server answers a subscribe resolver that throws); an error message would do too.
  const outsiderRefused = new Promise((resolve, reject) => {
    let refusal;
    outsider.subscribe({ query: sourceStatus, variables: ws }, {
      next: (r) => {
        if (r.errors && r.data == null) refusal = r.errors;
        else reject(new Error('the outsider received ' + JSON.stringify(r)));
      },
      error: resolve,
      complete: () => (refusal ? resolve(refusal) : reject(new Error('the outsider subscription completed without a refusal'))),
    });
  });
  // A's first notification must be the marker (B's access token): had A heard of her own change,
  // published earlier on the same stream, it would come first.
  const aFirst = first(a, { query: notification }, seen.a, () => true);
  const bHeard = first(b, { query: notification }, seen.b, (d) => d.notificationReceived.resourceId === fixture.sourceId);
  const receiving = first(b, { query: sourceStatus, variables: ws }, seen.status,
    (d) => d.sourceStatusChanged.id === fixture.sourceId && d.sourceStatusChanged.status === 'RECEIVING');

  const refusal = await outsiderRefused;
  const code = Array.isArray(refusal) ? refusal[0]?.extensions?.code : undefined;
  if (code !== 'NOT_FOUND') throw new Error('the outsider was refused with ' + JSON.stringify(refusal) + ', want NOT_FOUND');

  const bn = (await bHeard).notificationReceived;
  if (bn.type !== 'SOURCE_UPDATED' || bn.workspace?.id !== fixture.workspaceId || bn.actor?.id !== fixture.aUserId) {
    throw new Error("B's notification: " + JSON.stringify(bn));
  }
  const an = (await aFirst).notificationReceived;
  if (an.type !== 'ACCESS_TOKEN_CREATED' || an.actor?.id !== fixture.bUserId) {
    throw new Error("A's first notification is not B's access token: " + JSON.stringify(an) + ' (A heard of her own change?)');
  }
  const st = (await receiving).sourceStatusChanged;
  if (!Date.parse(st.lastSeenAt)) throw new Error('RECEIVING without lastSeenAt: ' + JSON.stringify(st));

  console.log(`graphql-ws subscriptions: B heard of A's ${bn.type} by ${bn.actor.name}, A did not (her first was ${an.type} by B); ` +
    `B's sourceStatusChanged went ${seen.status.map((r) => r.data.sourceStatusChanged.status).join(' → ')}; outsider refused (${code})`);
  await Promise.all([a.dispose(), b.dispose(), outsider.dispose()]);
  clearTimeout(timer);
} catch (e) {
  console.error('subscriptions: ' + (e?.message ?? JSON.stringify(e)) + '\nseen: ' + JSON.stringify(seen));
  process.exit(1);
}
