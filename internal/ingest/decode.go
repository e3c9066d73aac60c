package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Limits of Segment's HTTP API.
const (
	MaxEventBytes   = 32 << 10
	MaxRequestBytes = 500 << 10
	MaxBatchEvents  = 2500
)

// requestError is a whole request refused: 400 (or 413) with a code and a message naming the rule.
type requestError struct {
	Status  int
	Code    string
	Message string
}

func (e *requestError) Error() string { return e.Message }

func badRequest(code, format string, args ...any) *requestError {
	return &requestError{Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, args...)}
}

// request is a decoded tracking request: its events as raw JSON and the batch-level fields.
type request struct {
	WriteKey     string
	Events       []json.RawMessage
	Context      map[string]any
	Integrations map[string]any
	SentAt       any
	// valid says that every event is well-formed JSON: decode checked the whole body, so the
	// normaliser need not scan each event again.
	valid bool
}

// readBody reads a request body, decompressing gzip, and refuses one larger than MaxRequestBytes
// (compressed or not: a small gzip body must not expand into a large one).
func readBody(r *http.Request) ([]byte, *requestError) {
	var body io.Reader = r.Body
	compressed := &countingReader{r: io.LimitReader(r.Body, MaxRequestBytes+1)}
	if enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc == "gzip" {
		zr, err := gzip.NewReader(compressed)
		if err != nil {
			return nil, badRequest("INVALID_GZIP", "Content-Encoding: gzip, but the body is not gzip data")
		}
		defer zr.Close()
		body = zr
	} else if enc != "" && enc != "identity" {
		return nil, &requestError{Status: http.StatusUnsupportedMediaType, Code: "UNSUPPORTED_ENCODING",
			Message: "Content-Encoding: only gzip is accepted"}
	}
	b, err := io.ReadAll(io.LimitReader(body, MaxRequestBytes+1))
	if len(b) > MaxRequestBytes || compressed.n > MaxRequestBytes {
		return nil, badRequest("REQUEST_TOO_LARGE", "the request is larger than the limit of 500 KB (512000 bytes)")
	}
	if err != nil {
		return nil, badRequest("INVALID_BODY", "the body could not be read: %v", err)
	}
	if len(b) > MaxRequestBytes {
		return nil, badRequest("REQUEST_TOO_LARGE", "the request is larger than the limit of 500 KB (512000 bytes)")
	}
	return b, nil
}

// decode parses a body for a batch endpoint (batch true) or a single-event endpoint. JSON is parsed
// whatever the Content-Type: browsers send text/plain to avoid a CORS preflight.
func decode(body []byte, batch bool) (*request, *requestError) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, badRequest("INVALID_JSON", "the body must be a JSON object")
	}
	req := &request{}
	if !batch {
		if !json.Valid(body) {
			return nil, badRequest("INVALID_JSON", "the body is not valid JSON")
		}
		var head struct {
			WriteKey any `json:"writeKey"`
		}
		_ = json.Unmarshal(body, &head)
		req.WriteKey, _ = head.WriteKey.(string)
		if len(body) > MaxEventBytes {
			return nil, eventTooLarge(0, len(body))
		}
		req.Events = []json.RawMessage{body}
		req.valid = true
		return req, nil
	}
	// One pass over the body: the events stay raw until each is normalised.
	var b struct {
		Batch        []json.RawMessage `json:"batch"`
		WriteKey     any               `json:"writeKey"`
		Context      any               `json:"context"`
		Integrations any               `json:"integrations"`
		SentAt       any               `json:"sentAt"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field == "batch" {
			return nil, badRequest("INVALID_FIELD", "batch must be an array of events")
		}
		return nil, badRequest("INVALID_JSON", "the body is not valid JSON")
	}
	req.WriteKey, _ = b.WriteKey.(string)
	req.SentAt = b.SentAt
	var ok bool
	if b.Context != nil {
		if req.Context, ok = b.Context.(map[string]any); !ok {
			return nil, badRequest("INVALID_FIELD", "context must be an object")
		}
	}
	if b.Integrations != nil {
		if req.Integrations, ok = b.Integrations.(map[string]any); !ok {
			return nil, badRequest("INVALID_FIELD", "integrations must be an object")
		}
	}
	if b.Batch == nil {
		return nil, badRequest("MISSING_BATCH", "batch is required: an array of events")
	}
	req.Events = b.Batch
	if n := len(req.Events); n > MaxBatchEvents {
		return nil, badRequest("BATCH_TOO_LARGE", "the batch has %d events, more than the limit of 2500", n)
	}
	for i, e := range req.Events {
		if len(e) > MaxEventBytes {
			return nil, eventTooLarge(i, len(e))
		}
	}
	// json.Unmarshal checked the whole body before it split it into the raw events.
	req.valid = true
	return req, nil
}

func eventTooLarge(index, size int) *requestError {
	return badRequest("EVENT_TOO_LARGE", "event %d is %d bytes, larger than the limit of 32 KB (32768 bytes)", index, size)
}

// basicWriteKey reads the write key from Basic auth: the user name, with or without a colon and an
// empty password ("key:" or "key").
func basicWriteKey(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "basic") {
		return ""
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(strings.TrimSpace(rest))
		if err != nil {
			return ""
		}
	}
	user, _, _ := strings.Cut(string(raw), ":")
	return user
}

var errNoWriteKey = errors.New("no write key")

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
