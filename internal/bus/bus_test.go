package bus

import (
	"sync"
	"testing"
)

func TestPublishSubscribe(t *testing.T) {
	b := New(4)
	a := b.Subscribe(Topic{"source", "ws_1"})
	other := b.Subscribe(Topic{"source", "ws_2"})
	b.Publish(Topic{"source", "ws_1"}, "hello")
	if m := <-a.C; m.Payload != "hello" {
		t.Errorf("got %v", m.Payload)
	}
	select {
	case m := <-other.C:
		t.Errorf("another topic received %v", m)
	default:
	}
	a.Close()
	a.Close()
	if _, ok := <-a.C; ok || a.Err() != nil {
		t.Error("closed subscription still open, or closed with an error")
	}
	if b.Subscribers() != 1 {
		t.Errorf("%d subscribers", b.Subscribers())
	}
	other.Close()
}

func TestSlowSubscriberIsDroppedNotWaitedFor(t *testing.T) {
	b := New(2)
	slow := b.Subscribe(Topic{"usage", "ws"})
	fast := b.Subscribe(Topic{"usage", "ws"})
	var wg sync.WaitGroup
	wg.Add(1)
	got := 0
	go func() {
		defer wg.Done()
		for range fast.C {
			got++
			if got == 10 {
				fast.Close()
			}
		}
	}()
	for i := 0; i < 10; i++ {
		b.Publish(Topic{"usage", "ws"}, i) // never blocks on the slow one
	}
	n := 0
	for range slow.C {
		n++
	}
	if n != 2 || slow.Err() != ErrTooSlow {
		t.Errorf("slow subscriber got %d messages, err %v", n, slow.Err())
	}
	wg.Wait()
}

func TestConcurrentCloseAndPublish(t *testing.T) {
	b := New(1)
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		s := b.Subscribe(Topic{"events", "src"})
		wg.Add(2)
		go func() { defer wg.Done(); s.Close() }()
		go func() { defer wg.Done(); b.Publish(Topic{"events", "src"}, 1) }()
	}
	wg.Wait()
	if b.Subscribers() != 0 {
		t.Errorf("%d subscribers left", b.Subscribers())
	}
}
