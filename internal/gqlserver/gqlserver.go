// Package gqlserver assembles the GraphQL endpoint from gqlgen's executor and our parts: the
// HTTP and websocket transports, the limits, the caches, the error presenter and the metrics. Every
// protection is on by default; the configuration only moves thresholds.
package gqlserver

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/gqlhttp"
	"github.com/junctioncdp/junction/internal/gqllimit"
	"github.com/junctioncdp/junction/internal/obs"
)

// Options configure the endpoint.
type Options struct {
	Introspection    bool
	MaxBodyBytes     int64
	OperationTimeout time.Duration
	Limits           gqllimit.Limits
	Metrics          *obs.Metrics
	// Websocket is the transport for subscriptions; nil serves HTTP only.
	Websocket graphql.Transport
	// Operations, when set, wraps every operation (per-operation loaders and caches).
	Operations graphql.OperationMiddleware
}

// New returns the GraphQL endpoint for es.
func New(es graphql.ExecutableSchema, o Options) *handler.Server {
	srv := handler.New(es)
	if o.Websocket != nil {
		srv.AddTransport(o.Websocket)
	}
	// No server-sent events: gqlgen's SSE transport reads bodies without our size limit, runs
	// without the operation timeout and echoes undecodable bodies in its errors. Subscriptions are
	// served over the websocket.
	srv.AddTransport(gqlhttp.Transport{MaxBodyBytes: o.MaxBodyBytes, Timeout: o.OperationTimeout})

	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.SetParserTokenLimit(o.Limits.Tokens)
	// Suggestions ("Did you mean ...?") would reveal the schema that turning introspection off hides.
	srv.SetDisableSuggestion(!o.Introspection)
	if o.Introspection {
		srv.Use(extension.Introspection{})
	}
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](1000)})
	srv.Use(gqllimit.NewShape(o.Limits))
	srv.Use(gqllimit.NewCost(o.Limits))
	if o.Metrics != nil {
		srv.AroundOperations(operationMetrics(o.Metrics))
	}
	if o.Operations != nil {
		srv.AroundOperations(o.Operations)
	}
	srv.SetErrorPresenter(PresentError)
	srv.SetRecoverFunc(Recover)
	return srv
}

// PresentError turns an error returned by a resolver into the error the client sees: a domain error
// keeps its message and gets its code; gqlgen's own errors (argument coercion, limits) keep theirs;
// anything else is logged with the request id and shown as a bare INTERNAL error.
func PresentError(ctx context.Context, err error) *gqlerror.Error {
	if e, ok := apperr.As(err); ok && e.Code != apperr.Internal {
		out := graphql.DefaultErrorPresenter(ctx, errors.New(e.Message))
		out.Extensions = map[string]any{"code": string(e.Code)}
		if e.Field != "" {
			out.Extensions["field"] = e.Field
		}
		return out
	}
	var gqlErr *gqlerror.Error
	if errors.As(err, &gqlErr) && gqlErr.Err == nil {
		// Produced by gqlgen or gqlparser (coercion, validation, limits): meant for the client.
		out := graphql.DefaultErrorPresenter(ctx, gqlErr)
		if out.Extensions == nil || out.Extensions["code"] == nil {
			errcode.Set(out, string(apperr.BadUserInput))
		}
		return out
	}
	if errors.Is(err, context.DeadlineExceeded) {
		out := graphql.DefaultErrorPresenter(ctx, errors.New("the operation took longer than its time limit (operation-timeout) and was stopped"))
		out.Extensions = map[string]any{"code": "TIMEOUT"}
		return out
	}
	obs.Logger(ctx).Error("graphql resolver failed", "error", err.Error(), "path", graphql.GetPath(ctx).String())
	out := graphql.DefaultErrorPresenter(ctx, errors.New("internal error"))
	out.Extensions = map[string]any{"code": string(apperr.Internal)}
	return out
}

// Recover turns a panic in a resolver into an INTERNAL error for the client and a stack trace in
// the operator's log.
func Recover(ctx context.Context, p any) error {
	obs.Logger(ctx).Error("panic in graphql resolver", "panic", fmt.Sprint(p),
		"path", graphql.GetPath(ctx).String(), "stack", string(debug.Stack()))
	return apperr.New(apperr.Internal, "internal error")
}

func operationMetrics(m *obs.Metrics) graphql.OperationMiddleware {
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		op := graphql.GetOperationContext(ctx)
		opType := string(op.Operation.Operation)
		start := time.Now()
		handler := next(ctx)
		first := true
		return func(ctx context.Context) *graphql.Response {
			resp := handler(ctx)
			if first {
				first = false
				m.ObserveOperation(opType, time.Since(start), resp == nil || len(resp.Errors) > 0)
			}
			return resp
		}
	}
}
