package graph

import (
	"github.com/junctioncdp/junction/graph/model"
	"github.com/junctioncdp/junction/internal/engage"
)

// traitDefinition maps a computed trait's definition input (nil when left out).
func traitDefinition(in *model.ComputedTraitDefinitionInput) *engage.Definition {
	if in == nil {
		return nil
	}
	d := &engage.Definition{Kind: in.Kind, EventName: in.EventName, EventType: in.EventType, Property: deref(in.Property),
		Conditions: make([]engage.PropertyCondition, len(in.PropertyConditions))}
	for i, c := range in.PropertyConditions {
		d.Conditions[i] = engage.PropertyCondition{Path: c.Path, Operator: c.Operator, Value: c.Value}
	}
	if in.Aggregation != nil {
		d.Aggregation = *in.Aggregation
	}
	if in.Window != nil {
		d.Window = &engage.Window{Amount: in.Window.Amount, Unit: in.Window.Unit}
	}
	return d
}
