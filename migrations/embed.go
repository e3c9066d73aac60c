// Package migrations holds the database schema as numbered SQL files, embedded in the binary and
// applied in order at start-up by internal/db. A file named NNNN_name.sql runs on every database;
// NNNN_name.sqlite.sql and NNNN_name.postgres.sql hold the parts where the two dialects differ.
package migrations

import "embed"

// FS holds every file of this directory; the runner takes those ending in .sql.
//
//go:embed *
var FS embed.FS
