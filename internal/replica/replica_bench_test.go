package replica

import (
	"strings"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/bus"
)

// benchPair is two replicas on one database, each with a bus, and a subscription on the second.
func benchPair(b *testing.B) (*bus.Bus, *bus.Subscription, bus.Topic) {
	d, url := mustOpenDB(b)
	b1, b2 := newBus(), newBus()
	b2.Buffer = 1 << 16
	s1, s2 := mustJoin(b, d, url, b1), mustJoin(b, d, url, b2)
	waitFor(b, "two replicas counted", 5*time.Second, func() bool { return s1.Replicas() == 2 && s2.Replicas() == 2 })
	topic := bus.Topic{Kind: "thing", Key: "k"}
	sub := b2.Subscribe(topic)
	b.Cleanup(sub.Close)
	return b1, sub, topic
}

// BenchmarkRelayLatency: one message published on a replica and received on the other, one at a
// time: the time per op is the latency between replicas.
func BenchmarkRelayLatency(b *testing.B) {
	b1, sub, topic := benchPair(b)
	b.ResetTimer()
	for range b.N {
		b1.Publish(topic, "ping")
		<-sub.C
	}
}

// BenchmarkRelayThroughput: messages of 200 bytes published in bursts of 1000 (within the
// relay's queue and the subscriber's buffer) and received on the other replica; messages/s is the
// rate between replicas.
func BenchmarkRelayThroughput(b *testing.B) {
	b1, sub, topic := benchPair(b)
	payload := strings.Repeat("x", 200)
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; {
		n := min(1000, b.N-sent)
		for range n {
			b1.Publish(topic, payload)
		}
		for range n {
			<-sub.C
		}
		sent += n
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "messages/s")
}
