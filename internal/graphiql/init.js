// Starts GraphiQL on the page that internal/graphiql serves. It lives in its own file so that the
// page's Content-Security-Policy can forbid inline scripts.
(function () {
  'use strict';

  // GraphiQL's dialogs add a <style> element (to lock scrolling behind them), which the page's CSP
  // allows only with this response's nonce. The library that adds it (react-style-singleton, in
  // GraphiQL's bundle) takes the nonce from this global, named after webpack's.
  window.__webpack_nonce__ = document.currentScript.nonce;

  var root = document.getElementById('graphiql');

  // The endpoint is a path on this server; queries go to it over HTTP and subscriptions over a
  // websocket on the same path (graphql-transport-ws), ws: or wss: as the page is http: or https:.
  var url = new URL(root.dataset.endpoint, window.location.href);
  var wsURL = new URL(url.href);
  wsURL.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';

  // For a subscription GraphiQL's fetcher opens a websocket and sends the headers editor's headers
  // as the connection_init payload, so {"Authorization": "Bearer ..."} works for both transports.
  var fetcher = GraphiQL.createFetcher({ url: url.href, subscriptionUrl: wsURL.href });

  var defaultQuery = [
    '# Junction GraphQL API',
    '#',
    '# Run: Ctrl-Enter or the play button.',
    '# Docs: the book icon, top left.',
    '# Token: in Headers below, as',
    '#   {"Authorization": "Bearer ..."}',
    '',
    '{',
    '  serverInfo {',
    '    version',
    '    startedAt',
    '    now',
    '  }',
    '}',
    ''
  ].join('\n');

  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, { fetcher: fetcher, defaultQuery: defaultQuery })
  );
})();
