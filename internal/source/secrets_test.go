package source

import (
	"testing"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/catalog"
)

// The rules of a source's secret settings: a value is sealed and reads as the mask; the mask or
// leaving it out keeps what is stored; null or "" clears it; the mask with nothing stored is a
// user error.
func TestSplitSecrets(t *testing.T) {
	entry := &catalog.Entry{Settings: []catalog.Setting{{Name: "signingSecret", Type: "STRING", Secret: true}, {Name: "eventField", Type: "STRING"}}}
	for _, tc := range []struct {
		name          string
		given         map[string]any
		was           bool
		plain, sealed string
		cleared, errs int
	}{
		{"NewValue", map[string]any{"signingSecret": "abc"}, false, Mask, "abc", 0, 0},
		{"Replaced", map[string]any{"signingSecret": "def"}, true, Mask, "def", 0, 0},
		{"MaskKeeps", map[string]any{"signingSecret": Mask}, true, Mask, "", 0, 0},
		{"LeftOutKeeps", map[string]any{}, true, Mask, "", 0, 0},
		{"LeftOutNotSet", map[string]any{}, false, "", "", 0, 0},
		{"NullClears", map[string]any{"signingSecret": nil}, true, "", "", 1, 0},
		{"EmptyClears", map[string]any{"signingSecret": ""}, true, "", "", 1, 0},
		{"MaskWithoutValue", map[string]any{"signingSecret": Mask}, false, "", "", 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clean, errs := entry.Validate(tc.given, map[string]bool{"signingSecret": tc.was})
			plain, seal, cleared := splitSecrets(&errs, entry, tc.given, clean, map[string]bool{"signingSecret": tc.was})
			got, _ := plain["signingSecret"].(string)
			if got != tc.plain || seal["signingSecret"] != tc.sealed || len(cleared) != tc.cleared || len(errs) != tc.errs {
				t.Errorf("plain %q sealed %q cleared %v errs %v", got, seal["signingSecret"], cleared, errs)
			}
			if tc.errs > 0 && errs[0].Code != apperr.Required {
				t.Errorf("error %+v", errs[0])
			}
		})
	}
}
