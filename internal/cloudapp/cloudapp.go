// Package cloudapp receives cloud apps' webhooks (Stripe, GitHub, Shopify, HubSpot and a generic
// signed webhook) at a cloud-app source's inbound URL, POST /v1/webhooks/{sourceId}. It checks
// each vendor's signature against the source's signing secret, maps the vendor's events to
// Segment track events (and identifies where the vendor names a customer) with a messageId made
// from the vendor's event id, and hands them to the tracking API's writer (ingest.Receive), so
// that they go through the same stages, deduplication and delivery as any other event. A refused
// signature is answered 401 and stored as a discarded event (BAD_SIGNATURE), which the debugger
// and Health show.
package cloudapp

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/obs"
	"github.com/junctioncdp/junction/internal/source"
)

// PathPrefix starts every inbound URL's path.
const PathPrefix = "/v1/webhooks/"

// Path is the path of a source's inbound URL.
func Path(sourceID string) string { return PathPrefix + sourceID }

// MaxBodyBytes bounds a webhook's body (GitHub's pushes are the largest the vendors send).
const MaxBodyBytes = 1 << 20

// SecretSetting is the name of the setting that holds a cloud-app source's signing secret.
const SecretSetting = "signingSecret"

// Receiver serves the inbound URLs.
type Receiver struct {
	sources *source.Service
	ingest  *ingest.Service
	now     func() time.Time
}

// New returns the receiver.
func New(sources *source.Service, in *ingest.Service) *Receiver {
	return &Receiver{sources: sources, ingest: in, now: time.Now}
}

// ServeHTTP serves POST /v1/webhooks/{sourceId}.
func (h *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		reply(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "vendors send webhooks with POST")
		return
	}
	ctx := r.Context()
	sourceID := strings.TrimPrefix(r.URL.Path, PathPrefix)
	src, err := h.sources.Inbound(ctx, sourceID)
	if err != nil {
		obs.Logger(ctx).Error("cloudapp: reading the source failed", "error", err.Error())
		reply(w, http.StatusServiceUnavailable, "UNAVAILABLE", "the webhook could not be taken; retry")
		return
	}
	v := (*vendor)(nil)
	if src != nil {
		v = vendors[src.CatalogSlug]
	}
	if v == nil {
		reply(w, http.StatusNotFound, "NOT_FOUND", "no cloud-app source has this inbound URL")
		return
	}
	// Bodies being read share the tracking API's memory budget.
	size := int64(MaxBodyBytes)
	if r.ContentLength >= 0 && r.ContentLength < size {
		size = max(r.ContentLength, 1)
	}
	release, err := h.ingest.Admit(ctx, size)
	if err != nil {
		busy(w)
		return
	}
	defer release()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, size))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			reply(w, http.StatusRequestEntityTooLarge, "REQUEST_TOO_LARGE", "the body is larger than the limit of 1 MiB")
			return
		}
		reply(w, http.StatusBadRequest, "INVALID_BODY", "the body could not be read")
		return
	}
	req := &Request{SourceID: src.ID, Method: r.Method, URLs: []string{"https://" + r.Host + r.URL.RequestURI(), "http://" + r.Host + r.URL.RequestURI()},
		Header: r.Header, Body: body, Now: h.now()}
	in := ingest.Inbound{WorkspaceID: src.WorkspaceID, SourceID: src.ID, Enabled: src.Enabled, ClientIP: clientIP(r)}

	secret := src.Secrets[SecretSetting]
	verr := errNoSecret
	if secret != "" {
		verr = v.verify(req, secret)
	}
	if verr != nil {
		// A stand-in for the refused webhook, without its unverified body, so that the debugger
		// and Health show the refusal and its reason.
		in.Discard, in.Message = ingest.BadSignature, verr.Error()
		in.Events = []json.RawMessage{marshal(spec("track", "", "", "unverified", nil, v.name, "event", "Webhook Refused",
			"properties", map[string]any{"vendor": v.name, "bodyBytes": len(body)}))}
		if _, err := h.ingest.Receive(ctx, in); err != nil && !isLimit(err) {
			obs.Logger(ctx).Error("cloudapp: recording a refused webhook failed", "error", err.Error())
		}
		reply(w, http.StatusUnauthorized, "BAD_SIGNATURE", verr.Error())
		return
	}
	events, err := v.events(req, src.Settings)
	if err != nil {
		var perr *errPayload
		if errors.As(err, &perr) {
			reply(w, http.StatusBadRequest, "INVALID_PAYLOAD", perr.msg)
			return
		}
		obs.Logger(ctx).Error("cloudapp: mapping a webhook failed", "error", err.Error())
		reply(w, http.StatusInternalServerError, "INTERNAL", "the webhook could not be mapped")
		return
	}
	for _, e := range events {
		in.Events = append(in.Events, marshal(e))
	}
	if _, err := h.ingest.Receive(ctx, in); err != nil {
		var limited *ingest.RateLimited
		switch {
		case errors.As(err, &limited):
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(limited.Wait.Seconds(), 1)))))
			reply(w, http.StatusTooManyRequests, "RATE_LIMITED", "the workspace is over its event rate; retry later")
		case errors.Is(err, ingest.ErrBusy):
			busy(w)
		default:
			reply(w, http.StatusServiceUnavailable, "UNAVAILABLE", "the events could not be stored; retry")
		}
		return
	}
	// A retry of a webhook stored before is acknowledged the same way: its events were
	// deduplicated by their messageIds.
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`{"success":true}` + "\n"))
}

// isLimit tells the writer's refusals for load, which leave a refused webhook unrecorded.
func isLimit(err error) bool {
	var limited *ingest.RateLimited
	return errors.As(err, &limited) || errors.Is(err, ingest.ErrBusy)
}

func marshal(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

func busy(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	reply(w, http.StatusServiceUnavailable, "BUSY", "the server is busy and stored nothing; retry")
}

func reply(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"success": false, "code": code, "message": message})
}

// clientIP is the TCP peer's address: no forwarding header is trusted.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}
