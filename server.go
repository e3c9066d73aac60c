// Command junction is the server of Junction, a self-hostable customer data platform: the GraphQL API
// of its workspaces and the Segment-compatible tracking API, in one binary on one database.
//
//	go run .            listens on :8080 with a SQLite database under ./data
//	go run . -help      lists every setting and its environment variable
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/junctioncdp/junction/internal/app"
	"github.com/junctioncdp/junction/internal/config"
	"github.com/junctioncdp/junction/internal/obs"
)

func main() {
	cfg, err := config.LoadFromOS()
	if errors.Is(err, flag.ErrHelp) {
		return // -help printed the settings
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "junction:", err)
		os.Exit(2)
	}
	log := obs.NewLogger(os.Stdout, cfg.LogFormat, cfg.LogLevel)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	a, err := app.New(ctx, cfg, log)
	if err != nil {
		log.Error("start failed", "error", err.Error())
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		a.Close()
		log.Error("listen failed", "addr", cfg.Addr, "error", err.Error())
		os.Exit(1)
	}
	if err := a.Serve(ctx, ln); err != nil {
		log.Error("server stopped with an error", "error", err.Error())
		os.Exit(1)
	}
}
