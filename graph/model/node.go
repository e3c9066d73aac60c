// Package model holds the GraphQL types that are not domain types: gqlgen's generated payloads and
// connections, and the Node interface.
package model

// Node is any object with a global ID. Domain types (auth.User, workspace.Workspace ...) are bound
// to the schema directly, so the interface asks nothing of them; the node resolver returns only
// types that implement the schema's Node.
type Node any

// HealthTarget is a health issue's target: a source or a destination.
type HealthTarget any
