package gqlws_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/gqlws"
)

// TestLegacyGraphQLWS covers the graphql-ws subprotocol of subscriptions-transport-ws.
func TestLegacyGraphQLWS(t *testing.T) {
	nameData := json.RawMessage(`{"data":{"name":"test"}}`)

	t.Run("InitAckKeepAlive", func(t *testing.T) {
		_, url := newTestServer(t, &gqlws.Transport{KeepAliveInterval: 10 * time.Millisecond})
		c := dial(t, url, legacyWS)
		initialise(t, c, `{"authToken":"x"}`)
		expect(t, c, msg{Type: "ka"}) // right after the ack
		expect(t, c, msg{Type: "ka"}) // then every KeepAliveInterval
	})

	t.Run("StartDataStop", func(t *testing.T) {
		es, url := newTestServer(t, &gqlws.Transport{})
		c := dial(t, url, legacyWS)
		initialise(t, c, "")
		expect(t, c, msg{Type: "ka"})

		subscribe(t, c, "start", "1", "subscription { name }")
		es.SendNextSubscriptionMessage()
		expect(t, c, msg{ID: "1", Type: "data", Payload: nameData})
		es.SendCompleteSubscriptionMessage()
		expect(t, c, msg{ID: "1", Type: "complete"})

		subscribe(t, c, "start", "1", "subscription { name }")
		es.SendNextSubscriptionMessage()
		expect(t, c, msg{ID: "1", Type: "data", Payload: nameData})
		write(t, c, `{"type":"stop","id":"1"}`)
		// Nothing more for "1": the query's messages come next.
		subscribe(t, c, "start", "2", "query { name }")
		expect(t, c, msg{ID: "2", Type: "data", Payload: nameData})
		expect(t, c, msg{ID: "2", Type: "complete"})
	})

	t.Run("StopCancelsResolver", func(t *testing.T) {
		p, url := newProbe(t, &gqlws.Transport{})
		c := dial(t, url, legacyWS)
		initialise(t, c, "")
		subscribe(t, c, "start", "1", "subscription { user }")
		expect(t, c, msg{ID: "1", Type: "data", Payload: json.RawMessage(`{"data":{"user":""}}`)}, "ka")
		write(t, c, `{"type":"stop","id":"1"}`)
		select {
		case <-p.cancelled:
		case <-time.After(timeout):
			t.Fatal("resolver context not cancelled after stop")
		}
	})

	t.Run("RequestError", func(t *testing.T) {
		_, url := newTestServer(t, &gqlws.Transport{})
		c := dial(t, url, legacyWS)
		initialise(t, c, "")
		subscribe(t, c, "start", "1", "query { nope }")
		m := read(t, c, "ka")
		if m.ID != "1" || m.Type != "error" || !strings.Contains(string(m.Payload), "nope") {
			t.Fatalf("got %s %q %s, want an error naming the field", m.Type, m.ID, m.Payload)
		}
	})

	t.Run("ConnectionTerminate", func(t *testing.T) {
		_, url := newTestServer(t, &gqlws.Transport{})
		c := dial(t, url, legacyWS)
		initialise(t, c, "")
		expect(t, c, msg{Type: "ka"})
		write(t, c, `{"type":"connection_terminate"}`)
		expectClose(t, c, 1000, "")
	})

	t.Run("InitRejected", func(t *testing.T) {
		_, url := newTestServer(t, &gqlws.Transport{
			InitFunc: func(ctx context.Context, payload map[string]any) (context.Context, error) {
				return nil, errors.New("bad token")
			},
		})
		c := dial(t, url, legacyWS)
		write(t, c, `{"type":"connection_init","payload":{"authToken":"x"}}`)
		expect(t, c, msg{Type: "connection_error", Payload: json.RawMessage(`{"message":"Forbidden"}`)})
		expectClose(t, c, 4403, "Forbidden")
	})

	t.Run("StartBeforeInit", func(t *testing.T) {
		_, url := newTestServer(t, &gqlws.Transport{})
		c := dial(t, url, legacyWS)
		subscribe(t, c, "start", "1", "query { name }")
		expectClose(t, c, 4401, "Unauthorized")
	})

	t.Run("UnknownType", func(t *testing.T) {
		for _, typ := range []string{"subscribe", "ping"} {
			_, url := newTestServer(t, &gqlws.Transport{})
			c := dial(t, url, legacyWS)
			initialise(t, c, "")
			expect(t, c, msg{Type: "ka"})
			write(t, c, `{"type":"`+typ+`","id":"1","payload":{"query":"{ name }"}}`)
			expectClose(t, c, 4400, `Unknown message type "`+typ+`"`)
		}
	})
}
