package relay

import (
	"strconv"
	"testing"
)

func TestSlice(t *testing.T) {
	items := make([]string, 25)
	for i := range items {
		items[i] = "item" + strconv.Itoa(i)
	}
	id := func(s string) string { return s }
	n := func(v int) *int { return &v }
	t.Run("ForwardToTheEnd", func(t *testing.T) {
		var after *string
		var seen []string
		for pages := 0; ; pages++ {
			p, err := Slice(items, id, Args{First: n(10), After: after})
			if err != nil {
				t.Fatal(err)
			}
			seen = append(seen, p.Nodes()...)
			if !p.PageInfo.HasNextPage {
				if pages != 2 {
					t.Errorf("%d pages", pages+1)
				}
				break
			}
			after = p.PageInfo.EndCursor
		}
		if len(seen) != 25 || seen[24] != "item24" {
			t.Errorf("saw %v", seen)
		}
	})
	t.Run("Backward", func(t *testing.T) {
		p, _ := Slice(items, id, Args{Last: n(3)})
		if got := p.Nodes(); len(got) != 3 || got[0] != "item22" || !p.PageInfo.HasPreviousPage || p.PageInfo.HasNextPage {
			t.Errorf("%v %+v", got, p.PageInfo)
		}
		p2, _ := Slice(items, id, Args{Last: n(3), Before: p.PageInfo.StartCursor})
		if got := p2.Nodes(); len(got) != 3 || got[2] != "item21" || !p2.PageInfo.HasNextPage {
			t.Errorf("%v %+v", got, p2.PageInfo)
		}
	})
	t.Run("Limits", func(t *testing.T) {
		if _, err := Slice(items, id, Args{First: n(101)}); err == nil {
			t.Error("101 accepted")
		}
		bad := "nonsense"
		if _, err := Slice(items, id, Args{After: &bad}); err == nil {
			t.Error("bad cursor accepted")
		}
		if p, _ := Slice(items, id, Args{First: n(0)}); len(p.Edges) != 0 || !p.PageInfo.HasNextPage || *p.TotalCount != 25 {
			t.Errorf("first 0: %+v", p.PageInfo)
		}
	})
}
