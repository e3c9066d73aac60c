#!/usr/bin/env node
// graphiql.mjs: checks that the server's GraphiQL page works in a real browser with no internet.
//
//   npm ci && node graphiql.mjs http://127.0.0.1:8080/
//   SCREENSHOT=/tmp/graphiql.png node graphiql.mjs http://127.0.0.1:8080/
//
// Launches Debian's Chromium (/usr/bin/chromium, or $CHROMIUM) headless, opens the page, runs
// `{ serverInfo { version } }` over HTTP and `subscription { serverTime }` over the websocket
// (graphql-transport-ws), and fails if the page sends any request to a host other than the
// server's, breaks its Content-Security-Policy or throws. Prints one summary line; exits 0 on
// success and 1 on failure. Bounded by TIMEOUT_MS (default 30000) in all.
import { chromium } from 'playwright-core';

const TIMEOUT_MS = Number(process.env.TIMEOUT_MS || 30000);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

class Failure extends Error {}
const fail = (msg) => {
  throw new Failure(msg);
};

// Same host and port as the server, over http(s) or ws(s); data: and blob: URLs stay in the page.
function sameOrigin(base, raw) {
  const u = new URL(raw);
  if (u.protocol === 'data:' || u.protocol === 'blob:') return true;
  const scheme = { 'ws:': 'http:', 'wss:': 'https:' }[u.protocol] || u.protocol;
  return scheme === base.protocol && u.host === base.host;
}

// problems collects what the page's listeners find; a step that sees any fails, and so does a
// failure of any other kind, with them appended.
async function run(base, deadline, problems) {
  const left = () => Math.max(1, deadline - Date.now());
  const requests = [];
  const sockets = [];

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    timeout: left(),
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    // Every request of the page goes through here: foreign ones are recorded and never sent.
    await context.route('**/*', (route) => {
      const url = route.request().url();
      requests.push(url);
      if (sameOrigin(base, url)) return route.continue();
      problems.push(`request to another host: ${url}`);
      return route.abort('blockedbyclient');
    });
    const page = await context.newPage();
    page.on('websocket', (ws) => {
      const s = { url: ws.url(), sent: [], received: 0 };
      sockets.push(s);
      if (!sameOrigin(base, ws.url())) problems.push(`websocket to another host: ${ws.url()}`);
      ws.on('framesent', (f) => s.sent.push(String(f.payload)));
      ws.on('framereceived', () => s.received++);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error' && /Content Security Policy/i.test(msg.text())) {
        problems.push(`CSP violation: ${msg.text()}`);
      }
    });
    const check = (step) => {
      if (problems.length) fail(`${step}: ${problems.join('; ')}`);
    };

    const resp = await page.goto(base.href, { waitUntil: 'load', timeout: left() }).catch((err) => {
      fail(`GET ${base.href}: ${err.message.split('\n')[0]}`);
    });
    if (!resp || !resp.ok()) fail(`GET ${base.href}: status ${resp ? resp.status() : 'none'}`);
    check('load');
    await page
      .locator('.graphiql-query-editor .CodeMirror')
      .waitFor({ state: 'visible', timeout: left() })
      .catch(() => fail('GraphiQL did not load: no query editor'));
    check('load');

    // The editors are CodeMirror 5 instances, reachable from their DOM node. GraphiQL parses the
    // query a moment after a change and picks HTTP or the websocket from that parse, so wait for it.
    const setQuery = async (q) => {
      await page.evaluate((q) => document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(q), q);
      await page
        .waitForFunction(
          (q) => document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.documentAST?.loc?.source?.body === q,
          q,
          { timeout: left(), polling: 50 },
        )
        .catch(() => fail(`GraphiQL did not take the query ${q}`));
    };
    const result = () =>
      page.evaluate(() => document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() ?? '');
    const waitResult = (pred, what) =>
      page
        .waitForFunction(pred, null, { timeout: left(), polling: 100 })
        .catch(async () => fail(`${what}; result panel shows: ${(await result()).slice(0, 300)}`));
    const runButton = page.locator('.graphiql-execute-button');

    let t0 = Date.now();
    await setQuery('{ serverInfo { version } }');
    await runButton.click({ timeout: left() });
    await waitResult(() => {
      const v = document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() ?? '';
      return v.includes('"version"') || v.includes('"errors"');
    }, 'query got no result');
    const queryResult = await result();
    if (!queryResult.includes('"version"')) fail(`query failed: ${queryResult.slice(0, 300)}`);
    const queryMs = Date.now() - t0;
    check('query');

    // Two different serverTime values prove that the subscription streams over the websocket.
    t0 = Date.now();
    await setQuery('subscription { serverTime }');
    await runButton.click({ timeout: left() });
    await waitResult(() => {
      const v = document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() ?? '';
      const seen = (window.__serverTimes ||= new Set());
      const m = v.match(/"serverTime":\s*"([^"]+)"/);
      if (m) seen.add(m[1]);
      return seen.size >= 2 || v.includes('"errors"');
    }, 'subscription got fewer than two messages');
    const subResult = await result();
    if (!subResult.includes('"serverTime"')) fail(`subscription failed: ${subResult.slice(0, 300)}`);
    const subMs = Date.now() - t0;
    const ws = sockets.find((s) => s.sent.some((f) => /"type"\s*:\s*"subscribe"/.test(f)));
    if (!ws) fail(`no graphql-transport-ws "subscribe" message was sent (websockets: ${JSON.stringify(sockets.map((s) => s.url))})`);
    check('subscription');

    if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, timeout: left() });
    await runButton.click({ timeout: left() }); // stops the subscription
    check('end');

    return `query ${queryMs}ms, subscription over ${ws.url} 2 messages in ${subMs}ms, ${requests.length} requests all to ${base.host}`;
  } finally {
    await browser.close().catch(() => {});
  }
}

async function main() {
  const arg = process.argv[2];
  if (!arg) {
    console.error('usage: node graphiql.mjs <baseURL>   (for example http://127.0.0.1:8080/)');
    process.exit(2);
  }
  let base;
  try {
    base = new URL('/', arg);
  } catch {
    console.error(`graphiql: FAIL not a URL: ${arg}`);
    process.exit(2);
  }
  const deadline = Date.now() + TIMEOUT_MS;
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Failure(`timed out after ${TIMEOUT_MS}ms`)), TIMEOUT_MS + 2000);
  });
  const problems = [];
  try {
    const summary = await Promise.race([run(base, deadline, problems), timeout]);
    console.log(`graphiql: ok ${base.href}: ${summary}`);
    process.exitCode = 0;
  } catch (err) {
    let msg = err instanceof Failure ? err.message : String(err.message || err).split('\n')[0];
    const unseen = problems.filter((p) => !msg.includes(p));
    if (unseen.length) msg += `; also: ${unseen.join('; ')}`;
    console.log(`graphiql: FAIL ${base.href}: ${msg.replace(/\s+/g, ' ')}`);
    if (!(err instanceof Failure) && err.stack) console.error(err.stack);
    process.exitCode = 1;
  } finally {
    clearTimeout(timer);
  }
  // A hung browser must not keep the process alive past the deadline.
  setTimeout(() => process.exit(process.exitCode), 3000).unref();
}

main();
