package bootstrap_test

import (
	"strings"
	"testing"

	"hexapost/bootstrap"
)

func TestParseMix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give    string
		want    bootstrap.Mix
		wantErr string
	}{
		{give: "create=1,update=8,delete=1", want: bootstrap.Mix{Create: 1, Update: 8, Delete: 1}},
		{give: "update=1", want: bootstrap.Mix{Update: 1}},
		{give: " create=3 , delete=0", want: bootstrap.Mix{Create: 3}},
		{give: "create=0", wantErr: "every weight is 0"},
		{give: "create=-1", wantErr: "whole number ≥ 0"},
		{give: "create", wantErr: "want kind=weight"},
		{give: "read=1", wantErr: `unknown kind "read"`},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			t.Parallel()
			got, err := bootstrap.ParseMix(tt.give)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseMix(%q) = %v, %v; want an error containing %q", tt.give, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseMix(%q) = %+v, %v; want %+v", tt.give, got, err, tt.want)
			}
		})
	}
}
