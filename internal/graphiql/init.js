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

  // The server's links carry their secret in the fragment, which no request sends:
  // #invitation=jci_... (an invitation) and #email-verification=jcv_... (an address to verify).
  // Such a link opens the mutation that uses it, and the secret leaves the address bar.
  var linked = linkedOperation(window.location.hash);
  if (linked) {
    window.history.replaceState(null, '', window.location.pathname + window.location.search);
  }

  var props = { fetcher: fetcher, defaultQuery: defaultQuery };
  if (linked) {
    props.query = linked;
  }
  ReactDOM.createRoot(root).render(React.createElement(GraphiQL, props));

  function linkedOperation(hash) {
    var m = /^#(invitation|email-verification)=([A-Za-z0-9_%-]+)$/.exec(hash || '');
    if (!m) {
      return null;
    }
    var secret;
    try {
      secret = decodeURIComponent(m[2]);
    } catch (e) {
      return null;
    }
    if (!/^jc[iv]_[A-Za-z0-9_-]{20,100}$/.test(secret)) {
      return null;
    }
    if (m[1] === 'invitation') {
      return [
        '# An invitation. Log in first: put your session token in Headers below, as',
        '#   {"Authorization": "Bearer jcs_..."}',
        '# then run ShowInvitation to see it, and AcceptInvitation (or DeclineInvitation).',
        '',
        'query ShowInvitation {',
        '  invitation(token: "' + secret + '") {',
        '    workspaceName role status expiresAt invitedBy { name } viewerCanAccept',
        '  }',
        '}',
        '',
        'mutation AcceptInvitation {',
        '  invitationAccept(input: {token: "' + secret + '"}) {',
        '    workspace { slug name viewerRole }',
        '    userErrors { field message code }',
        '  }',
        '}',
        '',
        'mutation DeclineInvitation {',
        '  invitationDecline(input: {token: "' + secret + '"}) {',
        '    invitation { status }',
        '    userErrors { field message code }',
        '  }',
        '}',
        ''
      ].join('\n');
    }
    return [
      '# Confirms your address. Run it: a sign-up\'s link answers with a session token',
      '# to put in Headers below, as {"Authorization": "Bearer jcs_..."}.',
      '',
      'mutation VerifyEmail {',
      '  emailVerify(input: {token: "' + secret + '"}) {',
      '    token',
      '    user { id email emailVerified }',
      '    userErrors { field message code }',
      '  }',
      '}',
      ''
    ].join('\n');
  }
})();
