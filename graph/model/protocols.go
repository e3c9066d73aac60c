package model

import "github.com/junctioncdp/junction/internal/source"

// ViolationsChange is a violationsChanged message: the sources of a workspace with new
// violations that the subscriber sees, loaded with their access.
type ViolationsChange struct {
	WorkspaceID string
	SourceIDs   []string
	Sources     map[string]source.Source
}
