package ports_test

import (
	"testing"

	"hexapost/core/post"
	"hexapost/ports"
)

func TestAppendCheck(t *testing.T) {
	t.Parallel()
	change := func(id string, v int64) ports.Change {
		return ports.Change{Event: post.Event{PostID: id, Version: v}}
	}
	tests := []struct {
		name    string
		give    ports.Append
		wantErr string
	}{
		{"next versions", ports.Append{PostID: "p", ExpectedVersion: 2, Changes: []ports.Change{change("p", 3), change("p", 4)}}, ""},
		{"record only", ports.Append{PostID: "p", ExpectedVersion: 7}, ""},
		{"a gap", ports.Append{PostID: "p", ExpectedVersion: 2, Changes: []ports.Change{change("p", 4)}}, "change 0 is p v4, want p v3"},
		{"another post", ports.Append{PostID: "p", Changes: []ports.Change{change("p", 1), change("q", 2)}}, "change 1 is q v2, want p v2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.give.Check()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.wantErr {
				t.Errorf("Check() = %q, want %q", got, tt.wantErr)
			}
		})
	}
}
