//go:build tools

// This file pins the modules the build needs before any package imports them (gqlgen's generator
// runs `go mod tidy`). It is never compiled.
package main

import (
	_ "github.com/99designs/gqlgen"
	_ "github.com/gorilla/websocket"
	_ "github.com/hashicorp/golang-lru/v2"
	_ "github.com/jmoiron/sqlx"
	_ "github.com/mattn/go-sqlite3"
	_ "github.com/prometheus/client_golang/prometheus"
)
