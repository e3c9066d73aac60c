package graphiql

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// initHarness runs init.js in a Node.js VM with GraphiQL, React and the page stubbed, at the URL
// fragment given as its first argument, and prints what GraphiQL was given and what the address bar became.
const initHarness = `
const vm = require('vm');
const src = require('fs').readFileSync(0, 'utf8');
let props = null, replaced = null;
const hash = process.argv[1] || '';
const window = {
  location: { href: 'http://127.0.0.1:8080/' + hash, hash, pathname: '/', search: '' },
  history: { replaceState: (s, t, u) => { replaced = u; } },
};
const sandbox = {
  window, URL,
  document: { currentScript: { nonce: 'n' }, getElementById: () => ({ dataset: { endpoint: '/graphql' } }) },
  GraphiQL: Object.assign(function GraphiQL() {}, { createFetcher: () => 'fetcher' }),
  React: { createElement: (c, p) => { props = p; return null; } },
  ReactDOM: { createRoot: () => ({ render: () => {} }) },
};
vm.runInNewContext(src, sandbox);
console.log(JSON.stringify({ query: props.query || null, replaced }));
`

// TestLinks checks that the server's links (#invitation=, #email-verification=) open the
// mutation that uses their secret and take the secret out of the address bar, and that any other
// fragment changes nothing. It needs Node.js, and is skipped without it (outside CI).
func TestLinks(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node is missing in CI")
		}
		t.Skip("node is missing")
	}
	src, err := files.ReadFile("init.js")
	if err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, hash string) (query string, replaced *string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "node", "-e", initHarness, "--", hash)
		cmd.Stdin = strings.NewReader(string(src))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("node: %v\n%s", err, out)
		}
		var got struct {
			Query    *string
			Replaced *string
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("harness output %q: %v", out, err)
		}
		if got.Query != nil {
			query = *got.Query
		}
		return query, got.Replaced
	}
	const inv = "jci_Q2hhbmdlIHRoaXMgdG9rZW4gYmVmb3JlIHVzZQ-_x"
	t.Run("Invitation", func(t *testing.T) {
		q, replaced := run(t, "#invitation="+inv)
		for _, want := range []string{`invitationAccept(input: {token: "` + inv + `"})`, `invitation(token: "` + inv + `")`, `invitationDecline(input: {token: "` + inv + `"})`} {
			if !strings.Contains(q, want) {
				t.Errorf("query does not hold %s:\n%s", want, q)
			}
		}
		if replaced == nil || *replaced != "/" {
			t.Errorf("address bar %v, want / (the secret removed)", replaced)
		}
	})
	t.Run("EmailVerification", func(t *testing.T) {
		const tok = "jcv_Q2hhbmdlIHRoaXMgdG9rZW4gYmVmb3JlIHVzZQ-_x"
		if q, _ := run(t, "#email-verification="+tok); !strings.Contains(q, `emailVerify(input: {token: "`+tok+`"})`) {
			t.Errorf("query:\n%s", q)
		}
	})
	for name, hash := range map[string]string{
		"None":      "",
		"Other":     "#query=x",
		"Injection": `#invitation=jci_aaaaaaaaaaaaaaaaaaaaaaaa%22)%20%7B%20x%20%7D%20%23`,
		"WrongKind": "#invitation=jcs_Q2hhbmdlIHRoaXMgdG9rZW4gYmVmb3JlIHVzZQ",
	} {
		t.Run("Ignored/"+name, func(t *testing.T) {
			if q, replaced := run(t, hash); q != "" || replaced != nil {
				t.Errorf("fragment %q gave query %q, address %v", hash, q, replaced)
			}
		})
	}
}
