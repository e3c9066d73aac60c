package workspace

// Plan is a workspace's subscription level.
type Plan string

const (
	Free     Plan = "FREE"
	Team     Plan = "TEAM"
	Business Plan = "BUSINESS"
)

// Feature is an optional area of the product.
type Feature string

const (
	Engage        Feature = "ENGAGE"
	Protocols     Feature = "PROTOCOLS"
	PrivacyPortal Feature = "PRIVACY_PORTAL"
)

// PlanDetails is what a plan gives. A nil limit means none.
type PlanDetails struct {
	Plan             Plan
	Features         []Feature
	APICallsPerMonth *int
	MTUsPerMonth     *int
}

func limit(n int) *int { return &n }

// plans are the plans on offer, in the spirit of Segment's: the free plan has the core and small
// limits, Team adds the Privacy Portal and larger limits, Business has everything without limits.
var plans = map[Plan]PlanDetails{
	Free:     {Plan: Free, Features: []Feature{}, APICallsPerMonth: limit(250_000), MTUsPerMonth: limit(1_000)},
	Team:     {Plan: Team, Features: []Feature{PrivacyPortal}, APICallsPerMonth: limit(2_500_000), MTUsPerMonth: limit(10_000)},
	Business: {Plan: Business, Features: []Feature{Engage, Protocols, PrivacyPortal}},
}

// Details returns what plan p gives.
func (p Plan) Details() PlanDetails { return plans[p] }

// Valid tells whether p is a plan on offer.
func (p Plan) Valid() bool { _, ok := plans[p]; return ok }

// Has tells whether the plan includes feature f.
func (d PlanDetails) Has(f Feature) bool {
	for _, x := range d.Features {
		if x == f {
			return true
		}
	}
	return false
}
